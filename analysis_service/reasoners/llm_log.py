"""The llm_call table (llm_calls.repository) as the LLM client's call log, cache and budget
keeper."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.llm_calls import repository as llm_calls
from analysis_service.reasoners.budget import TokenBudget
from analysis_service.reasoners.llm_client import CallRecord


class DatabaseCallLog:
    """Records every call of one job; answers identical requests from any earlier job."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        job_id: uuid.UUID,
        token_budget: int | None = None,
    ):
        self._sessionmaker = sessionmaker
        self._job_id = job_id
        self.budget = TokenBudget(token_budget)
        self.calls = 0

    async def load_spent(self) -> None:
        """Start from what earlier attempts of the job already spent."""
        async with self._sessionmaker() as session:
            spent = (await llm_calls.llm_spent(session, [self._job_id])).get(self._job_id)
        self.calls, self.budget.spent = (spent["calls"], spent["tokens"]) if spent else (0, 0)

    async def lookup(self, request_hash: str) -> Any | None:
        async with self._sessionmaker() as session:
            return await llm_calls.lookup(session, request_hash)

    async def record(self, call: CallRecord) -> int:
        self.calls += 1
        async with self._sessionmaker() as session, session.begin():
            return await llm_calls.record(session, self._job_id, asdict(call))

    async def accept(self, call_id: int, data: Any) -> None:
        async with self._sessionmaker() as session, session.begin():
            await llm_calls.accept(session, call_id, data)
