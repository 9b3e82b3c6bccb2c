"""The queue worker: `python -m analysis_service.worker`. Run as many as you like.

A package whose `__main__` only calls main(): the scan's processes (shared.processes) then
do not import the whole worker again each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.embedded_db import resolve_database_url
from analysis_service.jobs import lifecycle
from analysis_service.jobs.tasks import make_queue_app
from analysis_service.queue import QUEUE
from analysis_service.settings import AnalysisSettings
from shared.logging import configure_logging

logger = logging.getLogger(__name__)


async def recover_stalled_jobs(app: procrastinate.App, stalled_after_s: float) -> int:
    """Put back in the queue the jobs of workers that stopped sending heartbeats (kill -9)."""
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s))
    for job in stalled:
        logger.warning("job %s of a dead worker is retried", job.id)
        await app.job_manager.retry_job(job)
    await app.job_manager.prune_stalled_workers(seconds_since_heartbeat=stalled_after_s)
    return len(stalled)


async def requeue_orphaned_jobs(
    sessionmaker: async_sessionmaker[AsyncSession], quiet_s: float
) -> list[uuid.UUID]:
    """Put back in the queue the jobs a run left `running` without a queue entry (it could not
    end them: the database was away at that moment)."""
    async with sessionmaker() as session, session.begin():
        moved = await lifecycle.requeue_orphans(session, quiet_s)
    for job_id in moved:
        logger.warning(
            "job %s was left running by a run that could not end it; queued again", job_id
        )
    return moved


async def _recovery_loop(
    app: procrastinate.App, sessionmaker: async_sessionmaker[AsyncSession], stalled_after_s: float
) -> None:
    while True:
        try:
            await recover_stalled_jobs(app, stalled_after_s)
            await requeue_orphaned_jobs(sessionmaker, stalled_after_s)
        except Exception:
            logger.exception("stalled job recovery failed; trying again later")
        await asyncio.sleep(max(1.0, stalled_after_s / 3))


async def serve(settings: AnalysisSettings, database_url: str) -> None:
    app = make_queue_app(database_url)
    engine = make_engine(database_url, pool_size=settings.worker_concurrency + 2)
    sessionmaker = make_sessionmaker(engine)
    context = {"settings": settings, "sessionmaker": sessionmaker}
    heartbeat = max(0.5, min(10.0, settings.worker_stalled_after_s / 3))
    async with app.open_async():
        recovery = asyncio.create_task(
            _recovery_loop(app, sessionmaker, settings.worker_stalled_after_s)
        )
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=settings.worker_concurrency,
                additional_context=context,
                update_heartbeat_interval=heartbeat,
                stalled_worker_timeout=settings.worker_stalled_after_s,
                # On Ctrl-C running jobs get a moment, then are handed back to the queue.
                shutdown_graceful_timeout=5.0,
                # A task that succeeded leaves no row: the job table keeps a job's story, and
                # a job's shard tasks would otherwise stay for good (about 3,000 for a
                # 1,000,000-image job at SHARD_SIZE 1000). A failed task stays to be looked at.
                delete_jobs=procrastinate.jobs.DeleteJobCondition.SUCCESSFUL,
                fetch_job_polling_interval=2.0,
            )
        finally:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
            await engine.dispose()


def main() -> None:
    settings = AnalysisSettings()
    configure_logging(settings.log_level, service="worker")
    asyncio.run(serve(settings, resolve_database_url(settings)))
