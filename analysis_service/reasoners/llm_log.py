"""The llm_call table as the LLM client's call log, cache and budget keeper."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.models import LLMCall
from analysis_service.reasoners.llm_client import BudgetExceeded, CallRecord


class DatabaseCallLog:
    """Records every call of one job; answers identical requests from any earlier job."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        job_id: uuid.UUID | None,
        token_budget: int | None = None,
    ):
        self._sessionmaker = sessionmaker
        self._job_id = job_id
        self._budget = token_budget
        self.spent_tokens = 0
        self.calls = 0

    async def load_spent(self) -> None:
        """Start from what earlier attempts of the job already spent."""
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    select(
                        func.count(),
                        func.coalesce(
                            func.sum(
                                func.coalesce(LLMCall.prompt_tokens, 0)
                                + func.coalesce(LLMCall.completion_tokens, 0)
                            ),
                            0,
                        ),
                    ).where(LLMCall.job_id == self._job_id)
                )
            ).one()
        self.calls, self.spent_tokens = int(row[0]), int(row[1])

    async def lookup(self, request_hash: str) -> Any | None:
        async with self._sessionmaker() as session:
            return await session.scalar(
                select(LLMCall.response)
                .where(LLMCall.request_hash == request_hash, LLMCall.response.is_not(None))
                .order_by(LLMCall.id.desc())
                .limit(1)
            )

    async def record(self, call: CallRecord) -> int:
        self.calls += 1
        self.spent_tokens += (call.prompt_tokens or 0) + (call.completion_tokens or 0)
        async with self._sessionmaker() as session, session.begin():
            call_id = await session.scalar(
                insert(LLMCall).values(job_id=self._job_id, **asdict(call)).returning(LLMCall.id)
            )
            return int(call_id or 0)

    async def accept(self, call_id: int, data: Any) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(LLMCall).where(LLMCall.id == call_id).values(response=data)
            )

    def check_budget(self, upcoming_tokens: int) -> None:
        if self._budget is not None and self.spent_tokens + upcoming_tokens > self._budget:
            raise BudgetExceeded(
                f"token budget exceeded: {self.spent_tokens} of {self._budget} tokens spent, "
                f"the next call needs about {upcoming_tokens}"
            )
