"""The job lifecycle on real Postgres: a user and a worker racing on one job never overwrite
each other, and only the moves of the lifecycle are made."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from sqlalchemy import text

from analysis_service.datasets import repository as datasets
from analysis_service.jobs import lifecycle
from analysis_service.jobs.lifecycle import JobStatus, TransitionNotAllowed


async def _new_job(sessionmaker) -> uuid.UUID:
    async with sessionmaker() as session, session.begin():
        dataset_id = await datasets.get_or_create_dataset(session, "/datasets/race")
        job = await lifecycle.create(session, dataset_id, {})
        return job.id


async def _status(sessionmaker, job_id: uuid.UUID) -> JobStatus | None:
    async with sessionmaker() as session:
        return await lifecycle.status_of(session, job_id)


async def _jitter(rng: random.Random) -> None:
    await asyncio.sleep(rng.random() * 0.004)


async def test_a_job_answered_cancelled_never_ends_otherwise(sessionmaker):
    """Cancel races claim and finish, each on its own connection, many times over."""
    rng = random.Random(7)
    seen: set[tuple[str | None, str | None]] = set()

    async def user(job_id: uuid.UUID) -> str | None:
        await _jitter(rng)
        async with sessionmaker() as session, session.begin():
            job = await lifecycle.cancel(session, job_id)
            return job.status if job is not None else None

    async def worker(job_id: uuid.UUID) -> str | None:
        await _jitter(rng)
        async with sessionmaker() as session, session.begin():
            if (claimed := await lifecycle.claim(session, job_id)) is None:
                return None
        await _jitter(rng)
        async with sessionmaker() as session, session.begin():
            return await lifecycle.finish(session, job_id, claimed.attempts, JobStatus.SUCCEEDED)

    for _ in range(150):
        job_id = await _new_job(sessionmaker)
        answered, finished = await asyncio.gather(user(job_id), worker(job_id))
        final = await _status(sessionmaker, job_id)
        seen.add((answered, finished))
        if answered == JobStatus.CANCELLED:
            # Cancelled before any worker claimed it: no worker ever runs or finishes it.
            assert finished is None and final == JobStatus.CANCELLED
        elif answered == JobStatus.RUNNING:
            # Claimed first: the worker finishes (this fake worker does not look at the flag).
            assert finished == JobStatus.SUCCEEDED and final == JobStatus.SUCCEEDED
        else:
            # The job had already ended when the cancel arrived.
            assert answered is None and final == JobStatus.SUCCEEDED
    # The race went each way at least once, or the test proved nothing.
    assert {a for a, _ in seen} >= {JobStatus.CANCELLED, JobStatus.RUNNING}


async def test_a_cancel_request_stops_the_job_at_its_next_claim(sessionmaker):
    job_id = await _new_job(sessionmaker)
    async with sessionmaker() as session, session.begin():
        assert await lifecycle.claim(session, job_id) is not None
        running = await lifecycle.cancel(session, job_id)
        assert running is not None and running.status == JobStatus.RUNNING
        assert running.cancel_requested
    # The worker dies; the queue hands the job to another worker, which must not run it.
    async with sessionmaker() as session, session.begin():
        assert await lifecycle.claim(session, job_id) is None
    assert await _status(sessionmaker, job_id) == JobStatus.CANCELLED


async def test_a_cancel_waits_for_a_claim_in_progress_and_then_only_asks_to_stop(sessionmaker):
    """The same race made deterministic: the claim's transaction is open when the cancel
    arrives; the cancel waits on the row, then finds the job running."""
    job_id = await _new_job(sessionmaker)
    async with sessionmaker() as worker:
        await worker.begin()
        assert await lifecycle.claim(worker, job_id) is not None

        async def user() -> str | None:
            async with sessionmaker() as session, session.begin():
                job = await lifecycle.cancel(session, job_id)
                return job.status if job is not None else None

        cancelling = asyncio.create_task(user())
        await asyncio.sleep(0.3)
        assert not cancelling.done()  # blocked on the claimed row
        await worker.commit()
        assert await cancelling == JobStatus.RUNNING
    async with sessionmaker() as session:
        assert await lifecycle.status_of(session, job_id) == JobStatus.RUNNING


async def test_a_stopping_worker_requeues_or_ends_a_job_it_was_asked_to_cancel(sessionmaker):
    job_id = await _new_job(sessionmaker)
    async with sessionmaker() as session, session.begin():
        attempt = (await lifecycle.claim(session, job_id)).attempts  # type: ignore[union-attr]
        assert await lifecycle.requeue(session, job_id, attempt) == JobStatus.QUEUED
        attempt = (await lifecycle.claim(session, job_id)).attempts  # type: ignore[union-attr]
        await lifecycle.cancel(session, job_id)
        # Stopping with a cancel asked for: the job ends rather than waiting in the queue.
        assert await lifecycle.requeue(session, job_id, attempt) == JobStatus.CANCELLED


async def test_a_stale_attempt_cannot_end_or_requeue_the_job(sessionmaker):
    """A worker that lost its job (the queue gave it to another) must not end the new run."""
    job_id = await _new_job(sessionmaker)
    async with sessionmaker() as session, session.begin():
        first = (await lifecycle.claim(session, job_id)).attempts  # type: ignore[union-attr]
        second = (await lifecycle.claim(session, job_id)).attempts  # type: ignore[union-attr]
        assert second == first + 1
        assert await lifecycle.finish(session, job_id, first, JobStatus.FAILED) == "running"
        assert await lifecycle.requeue(session, job_id, first) == JobStatus.RUNNING
        assert await lifecycle.finish(session, job_id, second, JobStatus.SUCCEEDED) == "succeeded"


async def test_moves_outside_the_lifecycle_change_nothing(sessionmaker):
    job_id = await _new_job(sessionmaker)
    async with sessionmaker() as session, session.begin():
        # Finishing or requeueing a job nobody claimed, retrying one that has not ended.
        assert await lifecycle.finish(session, job_id, 0, JobStatus.SUCCEEDED) == JobStatus.QUEUED
        assert await lifecycle.requeue(session, job_id, 0) == JobStatus.QUEUED
        assert await lifecycle.retry(session, job_id) is None
        with pytest.raises(TransitionNotAllowed):
            await lifecycle.finish(session, job_id, 0, JobStatus.RUNNING)
    async with sessionmaker() as session, session.begin():
        assert (await lifecycle.claim(session, job_id)).attempts == 1  # type: ignore[union-attr]
        assert await lifecycle.finish(session, job_id, 1, JobStatus.FAILED, "boom") == "failed"
        # An ended job is not claimed again, and a succeeded one cannot be retried.
        assert await lifecycle.claim(session, job_id) is None
        queued = await lifecycle.retry(session, job_id)
        assert queued is not None and queued.error is None and queued.status == "queued"
        assert (await lifecycle.claim(session, job_id)).attempts == 2  # type: ignore[union-attr]
        assert await lifecycle.finish(session, job_id, 2, JobStatus.SUCCEEDED) == "succeeded"
        assert await lifecycle.retry(session, job_id) is None
        assert await lifecycle.cancel(session, job_id) is None


def test_every_status_has_its_moves():
    assert set(lifecycle.TRANSITIONS) == set(JobStatus)
    for source, targets in lifecycle.TRANSITIONS.items():
        assert source not in lifecycle.TERMINAL or JobStatus.RUNNING not in targets


def test_an_unexpected_database_error_is_shown_without_its_sql_or_parameters():
    from sqlalchemy.exc import DBAPIError

    from analysis_service.pipeline.runner import public_error

    orig = ValueError("value too long for type character varying(64)")
    error = DBAPIError("INSERT INTO caption (text) VALUES (%(t)s)", {"t": "a secret"}, orig)
    shown = public_error(error)
    assert shown == "ValueError: value too long for type character varying(64)"
    assert "INSERT" not in shown and "secret" not in shown
    unreachable = OSError("cannot reach postgresql://subpop:hunter22@db:5432/subpop, token=abc123")
    shown = public_error(unreachable)
    assert shown.startswith("OSError: cannot reach postgresql://") and "db:5432" in shown
    assert "hunter22" not in shown and "abc123" not in shown


async def _queue_entry_run_by_a_worker(sessionmaker, job_id: uuid.UUID, seconds_ago: int) -> None:
    """Mark the job's queue entry as being run by a worker last heard from seconds_ago."""
    async with sessionmaker() as session, session.begin():
        worker = await session.scalar(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - make_interval(secs => :ago)) RETURNING id"
            ),
            {"ago": seconds_ago},
        )
        await session.execute(
            text(
                "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :worker "
                "WHERE lock = :lock"
            ),
            {"worker": worker, "lock": f"job:{job_id}"},
        )


@pytest.mark.parametrize(
    ("heartbeat_s_ago", "answered"),
    [(None, JobStatus.CANCELLED), (3600, JobStatus.CANCELLED), (1, JobStatus.RUNNING)],
    ids=["no worker", "worker silent", "worker alive"],
)
async def test_cancelling_a_running_job_whose_worker_is_gone_ends_it(
    sessionmaker, heartbeat_s_ago: int | None, answered: JobStatus
):
    job_id = await _new_job(sessionmaker)
    async with sessionmaker() as session, session.begin():
        attempt = (await lifecycle.claim(session, job_id)).attempts  # type: ignore[union-attr]
    if heartbeat_s_ago is not None:
        await _queue_entry_run_by_a_worker(sessionmaker, job_id, heartbeat_s_ago)
    async with sessionmaker() as session, session.begin():
        job = await lifecycle.cancel(session, job_id, unattended_after_s=30)
        assert job is not None and job.status == answered and job.cancel_requested
    # A worker that comes back cannot undo it.
    async with sessionmaker() as session, session.begin():
        final = await lifecycle.finish(session, job_id, attempt, JobStatus.SUCCEEDED)
    assert final == (JobStatus.SUCCEEDED if answered == JobStatus.RUNNING else JobStatus.CANCELLED)


async def test_a_job_left_running_without_a_queue_entry_is_queued_again(sessionmaker):
    """The run could not end the job (the database went away as it finished): its queue entry
    ended, the row still says running. Recovery puts it back in the queue, once quiet."""
    orphan, busy, recent = [await _new_job(sessionmaker) for _ in range(3)]
    async with sessionmaker() as session, session.begin():
        for job_id in (orphan, busy, recent):
            await lifecycle.claim(session, job_id)
        await session.execute(
            text("UPDATE procrastinate_jobs SET status = 'failed' WHERE lock IN (:a, :b)"),
            {"a": f"job:{orphan}", "b": f"job:{recent}"},
        )
        await session.execute(
            text("UPDATE job SET updated_at = now() - interval '1 hour' WHERE id IN (:a, :b)"),
            {"a": orphan, "b": busy},
        )
    await _queue_entry_run_by_a_worker(sessionmaker, busy, 1)
    async with sessionmaker() as session, session.begin():
        assert await lifecycle.requeue_orphans(session, quiet_s=60) == [orphan]
    async with sessionmaker() as session:
        assert await lifecycle.status_of(session, orphan) == JobStatus.QUEUED
        assert await lifecycle.status_of(session, busy) == JobStatus.RUNNING
        assert await lifecycle.status_of(session, recent) == JobStatus.RUNNING
        waiting = await session.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE lock = :l AND status = 'todo'"),
            {"l": f"job:{orphan}"},
        )
    assert waiting == 1
