"""The job lifecycle: its statuses, the moves allowed between them, every status change, and
the stages a running job goes through.

Each change is one conditional `UPDATE job SET status = ... WHERE id = ... AND status IN (...)
RETURNING ...`: when a user and a worker act on one job at the same moment (cancel against
claim, cancel against finish), Postgres orders the two updates on the row and the second one
matches nothing, so it cannot overwrite the first. No other module writes `job.status`.

    queued  --claim-->   running  --finish-->  succeeded | failed | cancelled
    queued  --cancel-->  cancelled
    running --claim-->   running    (the queue hands a dead worker's job to another worker)
    running --requeue--> queued     (its worker is stopping; cancelled if a cancel was asked)
    running --cancel-->  cancelled  (only when no worker attends it any more)
    failed | cancelled --retry--> queued
    succeeded | failed | cancelled --delete--> (no row)   (queued and running: cancel first)

Finish and requeue act only for the attempt that claimed the job: a runner that lost its job
(its worker stalled and the queue gave the job to another) cannot end the new attempt.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Job
from analysis_service.queue import enqueue_run_job, is_attended


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Stage(StrEnum):
    """The stages of a job, in order. A job made from a captions file imports instead of
    captioning; one with a dataset folder scans it first."""

    SCAN = "scan"
    IMPORT = "import"
    CAPTION = "caption"
    DISCOVER = "discover"
    SUMMARIZE = "summarize"


class StageState(StrEnum):
    """Where a stage is, in the job's progress."""

    RUNNING = "running"
    DONE = "done"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

#: Every move a job may make, by the status it leaves.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # A worker claims it, or the user cancels it before any worker did.
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    # It ends; it is handed back to the queue by a stopping worker; or, when its worker died,
    # another worker claims it again.
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.SUCCEEDED}
        | {JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset(),
}


class TransitionNotAllowed(ValueError):
    """A status change that the lifecycle does not have (a programming error)."""


def _checked(sources: set[JobStatus], target: JobStatus) -> list[str]:
    wrong = sorted(s for s in sources if target not in TRANSITIONS[s])
    if wrong:
        raise TransitionNotAllowed(f"no move from {wrong} to {target}")
    return sorted(sources)


async def _move(
    session: AsyncSession,
    job_id: uuid.UUID,
    sources: set[JobStatus],
    target: JobStatus,
    *conditions: Any,
    **values: Any,
) -> Job | None:
    """The one status write: the job moves to target if it is in one of sources (and the extra
    conditions hold); returns the updated row, or None when it was in another status."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(_checked(sources, target)), *conditions)
        .values(status=target, updated_at=func.now(), **values)
        .returning(Job)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def create(
    session: AsyncSession,
    dataset_id: uuid.UUID,
    options: dict[str, Any],
    api_key_name: str | None = None,
) -> Job:
    """A new job, queued in the caller's transaction: the row never lacks its queue entry."""
    job = Job(
        dataset_id=dataset_id,
        status=JobStatus.QUEUED,
        options=options,
        progress={},
        api_key_name=api_key_name,
    )
    session.add(job)
    await session.flush()
    await enqueue_run_job(session, job.id)
    return job


async def status_of(session: AsyncSession, job_id: uuid.UUID) -> JobStatus | None:
    found = await session.scalar(select(Job.status).where(Job.id == job_id))
    return JobStatus(found) if found is not None else None


async def running(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """The job while it runs and no cancel was asked for (what a shard of it may work for)."""
    return (
        await session.scalars(
            select(Job).where(
                Job.id == job_id,
                Job.status == JobStatus.RUNNING,
                Job.cancel_requested.is_(False),
            )
        )
    ).one_or_none()


async def claim(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """A worker takes the job: the claimed row, or None when there is nothing to run (it has
    ended, or a cancel was asked for, in which case it ends cancelled here)."""
    claimed = await _move(
        session,
        job_id,
        {JobStatus.QUEUED, JobStatus.RUNNING},
        JobStatus.RUNNING,
        Job.cancel_requested.is_(False),
        error=None,
        attempts=Job.attempts + 1,
        started_at=func.coalesce(Job.started_at, func.now()),
    )
    if claimed is None:
        await _move(
            session,
            job_id,
            {JobStatus.QUEUED, JobStatus.RUNNING},
            JobStatus.CANCELLED,
            Job.cancel_requested.is_(True),
            finished_at=func.now(),
        )
    return claimed


async def finish(
    session: AsyncSession,
    job_id: uuid.UUID,
    attempt: int,
    outcome: JobStatus,
    error: str | None = None,
) -> JobStatus | None:
    """The attempt that claimed the job ends it with outcome; returns the status the job has
    afterwards. A stale attempt (its job claimed again since) changes nothing."""
    if outcome not in TERMINAL:
        raise TransitionNotAllowed(f"{outcome} is not an end")
    ended = await _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        outcome,
        Job.attempts == attempt,
        error=error,
        finished_at=func.now(),
    )
    return outcome if ended is not None else await status_of(session, job_id)


async def requeue(session: AsyncSession, job_id: uuid.UUID, attempt: int) -> JobStatus | None:
    """The worker is stopping mid-attempt: the job goes back to the queue, resumable, unless a
    cancel was asked for, in which case it ends cancelled. Returns the job's status afterwards
    (unchanged when the attempt is stale)."""
    mine = (Job.attempts == attempt,)
    if await _move(
        session,
        job_id,
        {JobStatus.RUNNING},
        JobStatus.CANCELLED,
        *mine,
        Job.cancel_requested.is_(True),
        finished_at=func.now(),
    ):
        return JobStatus.CANCELLED
    if await _move(session, job_id, {JobStatus.RUNNING}, JobStatus.QUEUED, *mine):
        await enqueue_run_job(session, job_id)
        return JobStatus.QUEUED
    return await status_of(session, job_id)


async def cancel(
    session: AsyncSession, job_id: uuid.UUID, *, unattended_after_s: float | None = None
) -> Job | None:
    """A queued job is cancelled at once; a running one is asked to stop at its next batch
    (its worker ends it cancelled). With unattended_after_s, a running job that no worker has
    sent a heartbeat for in that long (its worker is gone) is cancelled at once too; should the
    worker come back, its finish no longer matches. None when the job is in neither status."""
    ends_now = {JobStatus.QUEUED}
    if unattended_after_s is not None and not await is_attended(
        session, job_id, unattended_after_s
    ):
        ends_now.add(JobStatus.RUNNING)
    ended = await _move(
        session,
        job_id,
        ends_now,
        JobStatus.CANCELLED,
        cancel_requested=True,
        finished_at=func.now(),
    )
    if ended is not None:
        return ended
    # Only the flag changes: the status stays the worker's to write.
    return (
        await session.scalars(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
            .values(cancel_requested=True, updated_at=func.now())
            .returning(Job)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


async def retry(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """A failed or cancelled job is queued again; it resumes from what it finished."""
    queued = await _move(
        session,
        job_id,
        {JobStatus.FAILED, JobStatus.CANCELLED},
        JobStatus.QUEUED,
        cancel_requested=False,
        error=None,
        finished_at=None,
    )
    if queued is not None:
        await enqueue_run_job(session, job_id)
    return queued


async def stop_requested(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Asked between batches by whoever works on a job (its run, or a shard of it elsewhere):
    a cancel was asked for, or the job is no longer running (it ended, failed on another
    shard's error, or went back to the queue), or it was deleted."""
    found = (
        await session.execute(select(Job.cancel_requested, Job.status).where(Job.id == job_id))
    ).first()
    return found is None or bool(found[0]) or found[1] != JobStatus.RUNNING


async def stop_for_deletion(
    session: AsyncSession, job_id: uuid.UUID, *, unattended_after_s: float
) -> JobStatus | None:
    """Before a job is deleted: cancel it (as `cancel` does), then lock its row for the rest
    of the transaction, so that no worker or user moves it meanwhile. Returns its status: an
    end, when it may be deleted now; running, when its worker has been asked to stop and
    will end it at its next batch; None when there is no such job."""
    await cancel(session, job_id, unattended_after_s=unattended_after_s)
    found = await session.scalar(select(Job.status).where(Job.id == job_id).with_for_update())
    return JobStatus(found) if found is not None else None


ORPHANED = text(
    """
    SELECT job.id FROM job
    WHERE job.status = 'running' AND job.updated_at < now() - make_interval(secs => :quiet_s)
      AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs q
                      WHERE q.lock = 'job:' || job.id::text AND q.status IN ('todo', 'doing'))
    """
)
"""Running jobs that nothing in the queue waits to run or is running, quiet for a while."""


async def requeue_orphans(session: AsyncSession, quiet_s: float) -> list[uuid.UUID]:
    """Jobs left `running` by a run that could not end or hand them back (the database went
    away at that moment, say) go back to the queue and resume; the ids of those moved."""
    moved = []
    for job_id in await session.scalars(ORPHANED, {"quiet_s": quiet_s}):
        if await _move(session, job_id, {JobStatus.RUNNING}, JobStatus.QUEUED) is not None:
            await enqueue_run_job(session, job_id)
            moved.append(job_id)
    return moved
