"""The llm_call table's repository through the LLM client's call log, on real Postgres: what a
job spent survives into its next attempt, and an accepted answer serves any later job."""

from __future__ import annotations

import uuid

from analysis_service.datasets import repository as datasets
from analysis_service.jobs import lifecycle
from analysis_service.llm_calls.repository import job_spent
from analysis_service.reasoners.llm_client import CallRecord
from analysis_service.reasoners.llm_log import DatabaseCallLog


async def _new_job(sessionmaker) -> uuid.UUID:
    async with sessionmaker() as session, session.begin():
        dataset_id = await datasets.get_or_create_dataset(session, "/datasets/llm")
        job = await lifecycle.create(session, dataset_id, {})
        return job.id


def _call(request_hash: str, prompt: int | None, completion: int | None) -> CallRecord:
    return CallRecord("dimensions", "dog", request_hash, "m", "json_schema", prompt, completion)


async def test_spent_tokens_carry_over_and_answers_are_shared(sessionmaker):
    first, second = await _new_job(sessionmaker), await _new_job(sessionmaker)
    log = DatabaseCallLog(sessionmaker, first)
    await log.load_spent()
    assert (log.calls, log.budget.spent) == (0, 0)
    failed = await log.record(_call("h1", None, None))
    answered = await log.record(_call("h1", 100, 20))
    await log.accept(answered, {"dimensions": ["pose"]})
    assert failed != answered and await log.lookup("h2") is None

    resumed = DatabaseCallLog(sessionmaker, first, token_budget=1000)
    await resumed.load_spent()
    assert (resumed.calls, resumed.budget.spent) == (2, 120)
    other = DatabaseCallLog(sessionmaker, second)
    assert await other.lookup("h1") == {"dimensions": ["pose"]}

    async with sessionmaker() as session:
        assert await job_spent(session, first) == (2, 120)
        assert await job_spent(session, second) == (0, 0)
