"""Queued work: a task that runs (or resumes) a job by id, one that runs a shard of a job's
stage, and the queue app that has them."""

from __future__ import annotations

import uuid

import procrastinate

from analysis_service.db import libpq_url
from analysis_service.pipeline.runner import run_job, run_shard
from analysis_service.queue import NAMESPACE, QUEUE, RUN_JOB, RUN_SHARD


async def run_queued_job(context: procrastinate.JobContext, job_id: str) -> None:
    """Safe to run twice: every stage resumes from what is stored."""
    extra = context.additional_context or {}
    await run_job(uuid.UUID(job_id), extra["settings"], extra["sessionmaker"])


async def run_queued_shard(
    context: procrastinate.JobContext, job_id: str, stage: str, index: int
) -> None:
    """Safe to run twice, or after the shard was done: it then ends at once."""
    extra = context.additional_context or {}
    await run_shard(uuid.UUID(job_id), stage, int(index), extra["settings"], extra["sessionmaker"])


def make_queue_app(database_url: str) -> procrastinate.App:
    """The queue app a worker runs: procrastinate on the database, with the tasks above."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=libpq_url(database_url))
    )
    # A blueprint of its own per app: adding one to an app renames its tasks in place (with the
    # namespace), so a shared one gives a second app in the process "analysis:analysis:run_job".
    blueprint = procrastinate.Blueprint()
    blueprint.task(name=RUN_JOB, queue=QUEUE, pass_context=True)(run_queued_job)
    blueprint.task(name=RUN_SHARD, queue=QUEUE, pass_context=True)(run_queued_shard)
    app.add_tasks_from(blueprint, namespace=NAMESPACE)
    return app
