"""The Postgres-backed job queue (procrastinate) on the service's own database: the names of
the queued tasks (a job's run, and a shard of a job's stage), and how they are put in the
queue. The tasks themselves are in jobs/tasks.py."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

QUEUE = "jobs"
NAMESPACE = "analysis"
RUN_JOB = "run_job"
RUN_JOB_TASK = f"{NAMESPACE}:{RUN_JOB}"  # the name procrastinate stores for it
RUN_SHARD = "run_shard"
RUN_SHARD_TASK = f"{NAMESPACE}:{RUN_SHARD}"

DEFER_JOB = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    ":queue, :task, 0, :lock, NULL, CAST(:args AS jsonb), NULL"
    ")::procrastinate_job_to_defer_v1]))"
)
"""Put one task in the queue through procrastinate's versioned SQL entry point."""

DEFER_SHARDS = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(SELECT ROW("
    ":queue, :task, 0, NULL, NULL, jsonb_build_object("
    "'job_id', CAST(:job_id AS text), 'stage', CAST(:stage AS text), 'index', i), NULL"
    ")::procrastinate_job_to_defer_v1 FROM unnest(CAST(:indexes AS int[])) AS i)))"
)
"""Put one task per shard in the queue, in one statement. No queue lock: a shard's own
advisory lock keeps two runners off it, and its job's lock is held by the job's run."""


async def enqueue_run_job(session: AsyncSession, job_id: uuid.UUID) -> int:
    """Queue the job inside the caller's transaction, so a job row never lacks its queue entry;
    the lock keeps two workers off one job."""
    row = await session.execute(
        DEFER_JOB,
        {
            "queue": QUEUE,
            "task": RUN_JOB_TASK,
            "lock": _lock(job_id),
            "args": json.dumps({"job_id": str(job_id)}),
        },
    )
    return int(row.scalar_one())


async def enqueue_run_shards(
    session: AsyncSession, job_id: uuid.UUID, stage: str, indexes: list[int]
) -> None:
    """Queue the shards inside the caller's transaction (the one that plans them), so a
    planned shard never lacks its queue entry."""
    if indexes:
        params = {
            "queue": QUEUE,
            "task": RUN_SHARD_TASK,
            "job_id": str(job_id),
            "stage": stage,
            "indexes": indexes,
        }
        await session.execute(DEFER_SHARDS, params)


ATTENDED = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM procrastinate_jobs j JOIN procrastinate_workers w ON w.id = j.worker_id
        WHERE j.lock = :lock AND j.status = 'doing'
          AND w.last_heartbeat > now() - make_interval(secs => :within_s)
    )
    """
)
"""Whether a worker that sent a heartbeat lately is running the job's queue entry."""


async def is_attended(session: AsyncSession, job_id: uuid.UUID, within_s: float) -> bool:
    params = {"lock": _lock(job_id), "within_s": within_s}
    return bool(await session.scalar(ATTENDED, params))


def _lock(job_id: uuid.UUID) -> str:
    """The queue lock of a job's entries: two workers never run one job at once."""
    return f"job:{job_id}"
