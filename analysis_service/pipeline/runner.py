"""Running one job through its stages, resuming from whatever earlier attempts finished; and
running one shard of a job's stage for the queued shard task (pipeline/fanout.py)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.datasets import repository as datasets
from analysis_service.jobs import lifecycle
from analysis_service.jobs import repository as jobs
from analysis_service.jobs.lifecycle import JobStatus, Stage
from analysis_service.jobs.schemas import JobOptions
from analysis_service.models import Job
from analysis_service.pipeline import caption, discover, fanout, import_captions, scan, summarize
from analysis_service.pipeline.context import JobCancelled, RunContext, StageFailed, Transports
from analysis_service.pipeline.fanout import ShardWork
from analysis_service.reasoners.budget import BudgetExceeded
from analysis_service.reasoners.factory import load_offline_reasoner_ahead, open_reasoner
from analysis_service.reasoners.llm_client import LLMError
from analysis_service.settings import AnalysisSettings
from analysis_service.shards.repository import ShardKey
from shared.http import redact

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _exclusive(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID
) -> AsyncIterator[bool]:
    """Whether this runner alone holds the job. A session-level advisory lock on a connection
    of its own, in autocommit so that no transaction stays open for the job's duration: a
    second runner of the same job (a stalled job retried while its worker still lives) backs
    off; a killed worker's lock dies with its connection."""
    async with sessionmaker() as session:
        guard = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        held = await jobs.try_lock_run(guard, job_id)
        try:
            yield held
        finally:
            if held:
                await jobs.unlock_run(guard, job_id)


async def _context_of(
    session: AsyncSession,
    job: Job,
    settings: AnalysisSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[RunContext, Path]:
    """(context, dataset root) of a job's current attempt."""
    root = Path(await datasets.root_path(session, job.dataset_id))
    options = JobOptions.model_validate(job.options)
    return RunContext(job.id, job.attempts, job.dataset_id, settings, sessionmaker, options), root


async def _claim(
    job_id: uuid.UUID, settings: AnalysisSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[RunContext, Path] | JobStatus | None:
    """(context, dataset root) of a claimed job, else the status the job has."""
    async with sessionmaker() as session, session.begin():
        job = await lifecycle.claim(session, job_id)
        if job is None:
            return await lifecycle.status_of(session, job_id)
        return await _context_of(session, job, settings, sessionmaker)


async def _caption_stage(
    ctx: RunContext, root: Path, transport: httpx.AsyncBaseTransport | None
) -> None:
    async with caption.open_client(ctx, transport) as client:
        await caption.run(ctx, root, client)


async def _stages(ctx: RunContext, root: Path, transports: Transports) -> None:
    captions_path = ctx.options.captions_path
    has_folder = ctx.options.has_folder
    if has_folder:
        if not await asyncio.to_thread(root.is_dir):
            raise StageFailed(f"dataset folder '{root}' no longer exists")
        if not await ctx.stage_done(Stage.SCAN):
            await scan.run(ctx, root)
            await summarize.update_counts(ctx)
    # Discovery comes next: its reasoner's libraries load while the captions are made or read.
    load_offline_reasoner_ahead(ctx.settings)
    if captions_path:
        path = Path(captions_path)
        if not await asyncio.to_thread(path.is_file):
            raise StageFailed(f"captions file '{path}' no longer exists")
        if not await ctx.stage_done(Stage.IMPORT):
            await import_captions.run(ctx, path, root if has_folder else None)
    elif not await ctx.stage_done(Stage.CAPTION):
        await _caption_stage(ctx, root, transports.caption)
    if not await ctx.stage_done(Stage.DISCOVER):
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
) -> JobStatus | None:
    """Run or resume a job; return its final status (None if another runner holds it).

    The transports replace the network in tests (fakes speaking the real protocols)."""
    async with _exclusive(sessionmaker, job_id) as alone:
        if not alone:
            logger.warning("job %s is being run elsewhere; not starting it twice", job_id)
            return None
        claimed = await _claim(job_id, settings, sessionmaker)
        if not isinstance(claimed, tuple):
            return claimed
        ctx, root = claimed
        return await _run_claimed(ctx, root, Transports(caption_transport, llm_transport))


def public_error(exc: BaseException) -> str:
    """An unexpected error as the job shows it: a database error without its SQL statement and
    parameters (they may hold paths, captions or secrets), and no credentials (a connection
    URL's password, a token); the whole story is in the log."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        exc = exc.orig
    message = redact(str(exc).splitlines()[0]) if str(exc) else ""
    return f"{type(exc).__name__}: {message[:300]}"


#: Errors that end a job or shard as foreseen (their message is the reason shown); any other
#: is a crash, logged with its traceback.
FORESEEN = (JobCancelled, StageFailed, BudgetExceeded, LLMError)


def outcome_of(exc: Exception) -> tuple[JobStatus, str | None]:
    """How an error ends a job, and the reason it shows."""
    if isinstance(exc, JobCancelled):
        return JobStatus.CANCELLED, None
    if isinstance(exc, StageFailed | BudgetExceeded):
        return JobStatus.FAILED, str(exc)
    if isinstance(exc, LLMError):
        return JobStatus.FAILED, f"LLM failed: {exc}"
    return JobStatus.FAILED, f"internal error: {public_error(exc)}"


async def _deleted(ctx: RunContext) -> bool:
    """Whether the job's row is gone: deleted while a batch of it was in flight here, whose
    statements then fail (a link to the job breaks its foreign key) for that reason alone."""
    async with ctx.sessionmaker() as session:
        return await lifecycle.status_of(session, ctx.job_id) is None


async def _outcome(
    ctx: RunContext, root: Path, transports: Transports
) -> tuple[JobStatus, str | None]:
    """Run the stages; how the job ends, and why when it did not succeed."""
    try:
        await _stages(ctx, root, transports)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if not isinstance(exc, FORESEEN) and not await _deleted(ctx):
            logger.exception("job %s crashed", ctx.job_id)
        return outcome_of(exc)
    return JobStatus.SUCCEEDED, None


async def _event(session: AsyncSession, ctx: RunContext, kind: str, message: str | None) -> None:
    await jobs.add_event(session, ctx.job_id, kind, ctx.stage, message)


async def _requeue(ctx: RunContext) -> None:
    """The worker is stopping mid-job: hand the job back to the queue (or end it cancelled,
    when a cancel was asked for)."""
    async with ctx.sessionmaker() as session, session.begin():
        status = await lifecycle.requeue(session, ctx.job_id, ctx.attempt)
        # In the transaction that moved the job (see _run_claimed).
        if status == JobStatus.QUEUED:
            await _event(session, ctx, "interrupted", "worker stopped; job queued again")
        elif status == JobStatus.CANCELLED:
            message = "worker stopped; the cancel asked for is done"
            await _event(session, ctx, JobStatus.CANCELLED, message)


async def _run_claimed(ctx: RunContext, root: Path, transports: Transports) -> JobStatus | None:
    await ctx.event("started", f"attempt {ctx.attempt}")
    try:
        outcome, error = await _outcome(ctx, root, transports)
    except asyncio.CancelledError:
        await asyncio.shield(_requeue(ctx))
        raise
    async with ctx.sessionmaker() as session, session.begin():
        status = await lifecycle.finish(session, ctx.job_id, ctx.attempt, outcome, error)
        # The outcome's event is written in the transaction that ends the job, which holds
        # its row: a DELETE arriving the moment the job has ended (allowed then) waits and
        # removes both, instead of the event's insert failing on a job already gone.
        if status == outcome:
            await _event(session, ctx, outcome, error)
    if status == outcome:
        logger.info("job %s %s%s", ctx.job_id, outcome, f": {error}" if error else "")
    elif status is None:
        logger.info("job %s was deleted while it ran; its run ends here", ctx.job_id)
    else:
        logger.warning("job %s ended %s but had become %s meanwhile", ctx.job_id, outcome, status)
    return status


#: How a shard task works on a shard of each stage that fans out.
SHARD_WORKERS: dict[
    str, Callable[[RunContext, Path, Transports], AbstractAsyncContextManager[ShardWork]]
] = {
    Stage.SCAN: scan.shard_worker,
    Stage.CAPTION: caption.shard_worker,
    Stage.DISCOVER: discover.shard_worker,
}


async def _shard_context(
    job_id: uuid.UUID, settings: AnalysisSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[RunContext, Path] | None:
    """(context, dataset root) of a job being run, else None: a shard of a job that is not
    running (queued again, ended, cancelled) waits for the job's next run, which queues it
    again."""
    async with sessionmaker() as session:
        job = await lifecycle.running(session, job_id)
        if job is None:
            return None
        return await _context_of(session, job, settings, sessionmaker)


async def run_shard(
    job_id: uuid.UUID,
    stage: str,
    index: int,
    settings: AnalysisSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    transports: Transports = Transports(),
) -> bool:
    """Run one shard of a running job's stage, unless it is done or another runner holds it;
    whether it was run to its end here. An error is recorded on the shard, and the job's run
    fails the job with it; a cancel (or the job's end) leaves the shard pending."""
    found = await _shard_context(job_id, settings, sessionmaker)
    if found is None or stage not in SHARD_WORKERS:
        return False
    ctx, root = found
    ctx.stage = Stage(stage)
    if ctx.stage is Stage.CAPTION:  # this worker may well take a class of the job next
        load_offline_reasoner_ahead(settings)
    key = ShardKey(job_id, stage, index)
    async with fanout.holding(ctx, [key]) as held:
        if held is None:
            return False
        try:
            async with SHARD_WORKERS[stage](ctx, root, transports) as work:
                await fanout.run_held(ctx, held, work)
        except JobCancelled:
            return False
        except Exception as exc:
            if not isinstance(exc, FORESEEN):
                if await _deleted(ctx):
                    logger.info(
                        "job %s was deleted while its %s shard %d ran here; the shard ends",
                        job_id,
                        stage,
                        index,
                    )
                    return False
                logger.exception("shard %s of job %s crashed", key, job_id)
            await fanout.record_error(ctx, key, outcome_of(exc)[1] or "")
            return False
    return True
