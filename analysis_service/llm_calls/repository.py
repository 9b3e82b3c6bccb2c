"""Every SQL statement on the llm_call table: the LLM client's call log and answer cache
(reasoners/llm_log.py), and what each job spent (running totals on the job row, which the job
view reads without touching the calls)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Job, LLMCall

#: The window of a key's daily token cap: any 24 hours, not calendar days, so that a cap
#: cannot be spent twice around midnight.
KEY_CAP_WINDOW = timedelta(hours=24)


async def lookup(session: AsyncSession, request_hash: str) -> Any | None:
    """The latest accepted answer to an identical request, by any job."""
    return await session.scalar(
        select(LLMCall.response)
        .where(LLMCall.request_hash == request_hash, LLMCall.response.is_not(None))
        .order_by(LLMCall.id.desc())
        .limit(1)
    )


async def record(session: AsyncSession, job_id: uuid.UUID, call: Mapping[str, Any]) -> int:
    """Store one call of a job (its llm_call columns in `call`) and add it to the job's running
    totals in the same transaction; its id."""
    call_id = await session.scalar(
        insert(LLMCall).values(job_id=job_id, **call).returning(LLMCall.id)
    )
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            llm_calls=Job.llm_calls + 1,
            llm_prompt_tokens=Job.llm_prompt_tokens + (call.get("prompt_tokens") or 0),
            llm_completion_tokens=Job.llm_completion_tokens + (call.get("completion_tokens") or 0),
        )
    )
    return int(call_id or 0)


async def accept(session: AsyncSession, call_id: int, data: Any) -> None:
    """Keep a call's answer: identical requests will be answered with it."""
    await session.execute(update(LLMCall).where(LLMCall.id == call_id).values(response=data))


async def job_spent(session: AsyncSession, job_id: uuid.UUID) -> tuple[int, int]:
    """Calls and tokens (prompt and completion) one job has spent so far: its running totals."""
    row = (
        await session.execute(
            select(Job.llm_calls, Job.llm_prompt_tokens + Job.llm_completion_tokens).where(
                Job.id == job_id
            )
        )
    ).first()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


async def key_spent(session: AsyncSession, key_name: str) -> int:
    """Tokens (prompt and completion) that the jobs submitted with that key spent in the
    last KEY_CAP_WINDOW."""
    tokens = func.coalesce(LLMCall.prompt_tokens, 0) + func.coalesce(LLMCall.completion_tokens, 0)
    return int(
        await session.scalar(
            select(func.coalesce(func.sum(tokens), 0))
            .join(Job, Job.id == LLMCall.job_id)
            .where(
                Job.api_key_name == key_name,
                LLMCall.created_at > func.now() - KEY_CAP_WINDOW,
            )
        )
        or 0
    )


async def key_of_job(session: AsyncSession, job_id: uuid.UUID) -> str | None:
    """The name of the API key that submitted the job (None when the API ran open)."""
    return await session.scalar(select(Job.api_key_name).where(Job.id == job_id))
