"""The llm_call table (llm_calls.repository) as the LLM client's call log, cache and budget
keeper."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.auth import repository as keys
from analysis_service.llm_calls import repository as llm_calls
from analysis_service.reasoners.budget import KeyCap, TokenBudget
from analysis_service.reasoners.llm_client import CallRecord


class DatabaseCallLog:
    """Records every call of one job; answers identical requests from any earlier job."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        job_id: uuid.UUID,
        token_budget: int | None = None,
        key_daily_tokens: int = 0,
    ):
        self._sessionmaker = sessionmaker
        self._job_id = job_id
        self._key_daily_tokens = key_daily_tokens  # KEY_DAILY_TOKENS: 0 is no cap
        self.budget = TokenBudget(token_budget)
        self.calls = 0

    async def load_spent(self) -> None:
        """Start from what earlier attempts of the job already spent, and from what the jobs
        of its API key spent in the last 24 hours when that key has a daily cap."""
        async with self._sessionmaker() as session:
            self.calls, self.budget.spent = await llm_calls.job_spent(session, self._job_id)
            if (name := await llm_calls.key_of_job(session, self._job_id)) is not None:
                cap = await keys.daily_tokens_of(session, name) or self._key_daily_tokens
                if cap:
                    self.budget.key = KeyCap(name, cap)
                    self.budget.key_spent_read(await llm_calls.key_spent(session, name))

    async def lookup(self, request_hash: str) -> Any | None:
        async with self._sessionmaker() as session:
            return await llm_calls.lookup(session, request_hash)

    async def record(self, call: CallRecord) -> int:
        self.calls += 1
        async with self._sessionmaker() as session, session.begin():
            call_id = await llm_calls.record(session, self._job_id, asdict(call))
            if (key := self.budget.key) is not None:
                # The other jobs of the key spend too: see them before the next call.
                self.budget.key_spent_read(await llm_calls.key_spent(session, key.name))
            return call_id

    async def accept(self, call_id: int, data: Any) -> None:
        async with self._sessionmaker() as session, session.begin():
            await llm_calls.accept(session, call_id, data)
