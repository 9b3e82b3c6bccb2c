"""The Postgres-backed job queue (procrastinate) on the service's own database."""

from __future__ import annotations

import json
import uuid

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.db import libpq_url

QUEUE = "jobs"
NAMESPACE = "analysis"
RUN_JOB_TASK = f"{NAMESPACE}:run_job"


def make_queue_app(database_url: str) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(database_url))
    from analysis_service.jobs.tasks import blueprint

    app = procrastinate.App(connector=connector)
    app.add_tasks_from(blueprint, namespace=NAMESPACE)
    return app


async def enqueue_run_job(session: AsyncSession, job_id: uuid.UUID) -> int:
    """Queue the job inside the caller's transaction, so a job row never lacks its queue entry.

    Uses procrastinate's versioned SQL entry point; the lock keeps two workers off one job.
    """
    row = await session.execute(
        text(
            "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
            ":queue, :task, 0, :lock, NULL, CAST(:args AS jsonb), NULL"
            ")::procrastinate_job_to_defer_v1]))"
        ),
        {
            "queue": QUEUE,
            "task": RUN_JOB_TASK,
            "lock": f"job:{job_id}",
            "args": json.dumps({"job_id": str(job_id)}),
        },
    )
    return int(row.scalar_one())
