"""The names the queue entry is written with are the ones the worker's task is registered under,
and a worker leaves no row of a task that succeeded."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from sqlalchemy import func, select, text

from analysis_service.jobs import lifecycle
from analysis_service.jobs.tasks import make_queue_app
from analysis_service.models import JobShard
from analysis_service.queue import QUEUE, RUN_JOB_TASK, RUN_SHARD_TASK
from analysis_service.settings import AnalysisSettings
from analysis_service.worker import serve
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests.builders import make_dataset
from tests.loopback import Loopback
from tests.pipeline_helpers import submit


def test_the_enqueued_task_names_and_queue_are_the_registered_ones():
    app = make_queue_app("postgresql://unused@127.0.0.1:1/none")  # connects only when opened
    for name in (RUN_JOB_TASK, RUN_SHARD_TASK):
        assert name in app.tasks
        assert app.tasks[name].queue == QUEUE


def test_every_queue_app_in_a_process_has_the_task_under_its_name():
    """Tests and an in-process worker make several apps; each must find the task."""
    apps = [make_queue_app("postgresql://unused@127.0.0.1:1/none") for _ in range(3)]
    assert all(RUN_JOB_TASK in app.tasks for app in apps)
    assert all(app.tasks[RUN_JOB_TASK].queue == QUEUE for app in apps)


async def _queue_rows(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status")
        )
        return {status: int(n) for status, n in rows}


async def _wait_for(check, what: str, timeout_s: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := await check()) is None:
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return found


async def test_a_worker_leaves_no_queue_row_of_a_task_that_succeeded(
    api, database_url, data_root: Path, sessionmaker
):
    """A sharded job's run and every shard task (those the job's run had done itself too)
    end without a row left in the queue's table."""
    make_dataset(data_root / "pets", per_class=6)
    caption_app = create_caption_app(CaptionSettings(data_roots=str(data_root)))
    with Loopback(caption_app) as captions:
        settings = AnalysisSettings(
            database_url=database_url,
            data_roots=str(data_root),
            caption_urls=captions.url,
            shard_size=4,
        )
        job_id = uuid.UUID(await submit(api, "pets"))
        worker = asyncio.create_task(serve(settings, database_url))
        try:

            async def ended() -> str | None:
                async with sessionmaker() as session:
                    status = await lifecycle.status_of(session, job_id)
                return status if status in lifecycle.TERMINAL else None

            assert await _wait_for(ended, "the job to end") == "succeeded"

            async def queue_idle() -> dict[str, int] | None:
                rows = await _queue_rows(sessionmaker)
                return None if rows.get("todo") or rows.get("doing") else rows

            # Shards were queued (3 scan, 3 caption, 2 discover; the first of each stage
            # the job's run takes itself), and the worker has run every task.
            assert await _wait_for(queue_idle, "the queue to be worked off") == {}
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    async with sessionmaker() as session:
        shards = await session.scalar(select(func.count()).select_from(JobShard))
    assert shards == 8
