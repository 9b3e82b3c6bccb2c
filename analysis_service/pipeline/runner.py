"""Running one job through its stages, resuming from whatever earlier attempts finished."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.clients.caption_client import CaptionClient
from analysis_service.models import Dataset, Job
from analysis_service.pipeline import caption, discover, import_captions, scan, summarize
from analysis_service.pipeline.context import JobCancelled, JobContext, StageFailed
from analysis_service.queue import enqueue_run_job
from analysis_service.reasoners import open_reasoner
from analysis_service.reasoners.llm_client import BudgetExceeded, LLMError
from analysis_service.settings import AnalysisSettings

logger = logging.getLogger(__name__)

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class Transports:
    caption: httpx.AsyncBaseTransport | None = None
    llm: httpx.AsyncBaseTransport | None = None


def _lock_key(job_id: uuid.UUID) -> int:
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


async def _claim(session: AsyncSession, job_id: uuid.UUID) -> tuple[Job, Dataset] | None:
    """Mark the job running, or return None when there is nothing to run."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None or job.status in TERMINAL:
        return None
    if job.cancel_requested:
        job.status, job.finished_at = "cancelled", func.now()
        return None
    job.status, job.error, job.attempts = "running", None, job.attempts + 1
    job.started_at = job.started_at or func.now()
    job.updated_at = func.now()
    dataset = await session.get(Dataset, job.dataset_id)
    assert dataset is not None
    return job, dataset


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    status: str,
    error: str | None,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=status, error=error, finished_at=func.now(), updated_at=func.now())
        )


async def _requeue(sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> None:
    """The worker is shutting down mid-job: hand the job back to the queue."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Job).where(Job.id == job_id, Job.status == "running").values(status="queued")
        )
        await enqueue_run_job(session, job_id)


async def _caption_stage(
    ctx: JobContext, root: Path, transport: httpx.AsyncBaseTransport | None
) -> None:
    settings = ctx.settings
    async with CaptionClient(
        settings.caption_url_list,
        retry=settings.caption_retry,
        timeout_s=settings.caption_timeout_s,
        send=settings.caption_send,
        request_id=str(ctx.job_id),
        overload_wait_s=settings.caption_overload_wait_s,
        transport=transport,
    ) as client:
        await caption.run(ctx, root, client)


async def _stages(ctx: JobContext, root: Path, transports: Transports) -> None:
    captions_path = ctx.options.get("captions_path")
    has_folder = ctx.options.get("dataset_path") is not None or not captions_path
    if has_folder:
        if not await asyncio.to_thread(root.is_dir):
            raise StageFailed(f"dataset folder '{root}' no longer exists")
        if not await ctx.stage_done(scan.STAGE):
            await scan.run(ctx, root)
            await summarize.update_counts(ctx)
    if captions_path:
        path = Path(captions_path)
        if not await asyncio.to_thread(path.is_file):
            raise StageFailed(f"captions file '{path}' no longer exists")
        if not await ctx.stage_done(import_captions.STAGE):
            await import_captions.run(ctx, path, with_dataset=has_folder)
    elif not await ctx.stage_done(caption.STAGE):
        await _caption_stage(ctx, root, transports.caption)
    if not await ctx.stage_done(discover.STAGE):
        async with open_reasoner(ctx, transports.llm) as reasoner:
            await discover.run(ctx, reasoner)
    await summarize.run(ctx)


async def run_job(
    job_id: uuid.UUID,
    settings: AnalysisSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    caption_transport: httpx.AsyncBaseTransport | None = None,
    llm_transport: httpx.AsyncBaseTransport | None = None,
) -> str | None:
    """Run or resume a job; return its final status (None if another runner holds it).

    The transports replace the network in tests (fakes speaking the real protocols)."""
    engine = sessionmaker.kw["bind"]
    async with engine.connect() as raw:
        # A session-level advisory lock on a connection of its own, in autocommit so that no
        # transaction stays open for the job's duration: a second runner of the same job (a
        # stalled job retried while its worker still lives) backs off; a killed worker's lock
        # dies with its connection.
        guard = await raw.execution_options(isolation_level="AUTOCOMMIT")
        key = {"k": _lock_key(job_id)}
        if not await guard.scalar(text("SELECT pg_try_advisory_lock(:k)"), key):
            logger.warning("job %s is being run elsewhere; not starting it twice", job_id)
            return None
        try:
            transports = Transports(caption_transport, llm_transport)
            return await _run_locked(job_id, settings, sessionmaker, transports)
        finally:
            await guard.execute(text("SELECT pg_advisory_unlock(:k)"), key)


async def _run_locked(
    job_id: uuid.UUID,
    settings: AnalysisSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    transports: Transports,
) -> str | None:
    async with sessionmaker() as session, session.begin():
        claimed = await _claim(session, job_id)
        if claimed is None:
            return await session.scalar(select(Job.status).where(Job.id == job_id))
        job, dataset = claimed
        ctx = JobContext(job_id, job.dataset_id, settings, sessionmaker, dict(job.options))
    await ctx.event("started", None, f"attempt {job.attempts}")
    status, error = "succeeded", None
    try:
        await _stages(ctx, Path(dataset.root_path), transports)
    except JobCancelled:
        status = "cancelled"
    except (StageFailed, BudgetExceeded) as exc:
        status, error = "failed", str(exc)
    except LLMError as exc:
        status, error = "failed", f"LLM failed: {exc}"
    except asyncio.CancelledError:
        await asyncio.shield(_requeue(sessionmaker, job_id))
        await ctx.event("interrupted", None, "worker stopped; job queued again")
        raise
    except Exception as exc:
        logger.exception("job %s crashed", job_id)
        status, error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    await _finish(sessionmaker, job_id, status, error)
    await ctx.event(status, None, error)
    logger.info("job %s %s%s", job_id, status, f": {error}" if error else "")
    return status
