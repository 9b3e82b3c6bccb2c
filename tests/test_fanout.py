"""A job's stages fanned out into shards (pipeline/fanout.py), in-process against the real
caption app: the same results as one piece, progress summed over the shards, a stopped run's
finished shards never redone, and shards of a job that does not run left alone. Workers in
real processes, one killed outright, are in test_processes.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from analysis_service.captions import repository as captions
from analysis_service.models import Caption, JobImage, JobShard
from analysis_service.pipeline.context import Transports
from analysis_service.pipeline.runner import run_shard
from analysis_service.queue import RUN_SHARD_TASK
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, run, submit


@pytest.fixture
def dataset(data_root: Path) -> Path:
    root = make_dataset(data_root / "pets", per_class=10, classes=("cat", "dog", "owl"))
    (root / "cat" / "sub").mkdir()
    write_image(root / "cat" / "sub" / "nested.png", color=(250, 250, 250))
    (root / "dog" / "broken.jpg").write_bytes(b"not an image")
    (root / "stray.jpg").write_bytes((root / "cat" / "00.jpg").read_bytes())
    return root


async def _shards(sessionmaker, job_id: str) -> dict[str, list[JobShard]]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(JobShard)
            .where(JobShard.job_id == uuid.UUID(job_id))
            .order_by(JobShard.stage, JobShard.index)
        )
        found: dict[str, list[JobShard]] = {}
        for row in rows:
            found.setdefault(row.stage, []).append(row)
        return found


async def _results(api, job_id: str) -> tuple:
    """What a job found, by relative path: comparable between jobs of two copies of a folder."""
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    structure = (await api.get(f"/v1/jobs/{job_id}/structure")).json()
    rows = (await api.get(f"/v1/jobs/{job_id}/assignments", params={"format": "csv"})).text
    invalid = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    for cls in structure["classes"]:
        for dim in cls["dimensions"]:
            for attribute in dim["attributes"]:
                attribute.pop("id")  # row ids differ between jobs
    return (
        (job["status"], job["images"], job["valid"], job["invalid"]),
        structure["classes"],
        sorted(rows.splitlines()),
        sorted((i["path"], i["reason"]) for i in invalid),
    )


async def test_a_sharded_job_finds_what_an_unsharded_one_does_with_no_duplicates(
    api, analysis_settings, sessionmaker, caption_app, dataset, data_root
):
    copy = Path(shutil.copytree(dataset, data_root / "copy"))
    sharded = analysis_settings.model_copy(update={"shard_size": 4})
    one_piece = analysis_settings.model_copy(update={"shard_size": 1000})
    first = await submit(api, str(dataset))
    transport = CountingTransport(caption_app)
    assert await run(first, sharded, sessionmaker, transport) == "succeeded"
    second = await submit(api, str(copy))
    assert await run(second, one_piece, sessionmaker, CountingTransport(caption_app)) == (
        "succeeded"
    )
    assert await _results(api, first) == await _results(api, second)

    shards = await _shards(sessionmaker, first)
    # 33 files, 31 valid (the stray file is outside the classes), 3 classes.
    assert [len(shards[s]) for s in ("scan", "caption", "discover")] == [9, 8, 3]
    assert all(s.state == "done" and s.runs == 1 for rows in shards.values() for s in rows)
    assert sum(s.done for s in shards["scan"]) == 33
    assert sum(s.done for s in shards["caption"]) == transport.images_sent == 31
    assert [s.lo for s in shards["discover"]] == ["cat", "dog", "owl"]
    # The copy's bytes were captioned by the first job: no caption shard.
    unsharded = await _shards(sessionmaker, second)
    assert {stage: len(rows) for stage, rows in unsharded.items()} == {"scan": 1, "discover": 3}
    async with sessionmaker() as session:
        links = await session.scalar(
            select(func.count()).select_from(JobImage).where(JobImage.job_id == uuid.UUID(first))
        )
        assert links == 33
        assert await session.scalar(select(func.count()).select_from(Caption)) == 31
        twice = await session.execute(
            text(
                "SELECT 1 FROM job_image ji JOIN image i ON i.id = ji.image_id "
                "GROUP BY ji.job_id, i.relpath HAVING count(*) > 1"
            )
        )
        assert twice.first() is None


async def test_progress_is_the_sum_of_the_shards_while_they_run(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    settings = analysis_settings.model_copy(
        update={"shard_size": 4, "caption_batch_size": 2, "caption_concurrency": 1}
    )
    job_id = await submit(api, str(dataset))
    transport = CountingTransport(caption_app)
    seen: list[tuple[int, int]] = []

    async def compare() -> None:
        async with sessionmaker() as session:
            shown = (await api.get(f"/v1/jobs/{job_id}")).json()["progress"]["caption"]["done"]
            summed = await session.scalar(
                text("SELECT sum(done) FROM job_shard WHERE job_id = :id AND stage = 'caption'"),
                {"id": uuid.UUID(job_id)},
            )
            seen.append((shown, int(summed)))

    transport.before_call = compare
    assert await run(job_id, settings, sessionmaker, transport) == "succeeded"
    assert len(seen) == 16 and all(shown == summed for shown, summed in seen)
    assert [s for s, _ in seen] == sorted(s for s, _ in seen) and seen[-1][0] == 30
    progress = (await api.get(f"/v1/jobs/{job_id}")).json()["progress"]
    assert progress["scan"]["done"] == progress["scan"]["total"] == 33
    assert progress["caption"]["done"] == progress["caption"]["total"] == 31
    assert progress["discover"]["done"] == progress["discover"]["total"] == 3


async def test_a_stopped_run_resumes_without_redoing_finished_shards_or_storing_twice(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    settings = analysis_settings.model_copy(
        update={"shard_size": 4, "caption_batch_size": 2, "caption_concurrency": 1}
    )
    job_id = await submit(api, str(dataset))
    first = CountingTransport(caption_app)
    stop = asyncio.Event()

    async def stop_after_a_few() -> None:
        if first.caption_calls == 7:  # inside the caption stage's fourth shard
            stop.set()
            await asyncio.sleep(3600)

    first.before_call = stop_after_a_few
    running = asyncio.create_task(run(job_id, settings, sessionmaker, first))
    await stop.wait()
    running.cancel()  # what a stopping worker does to its tasks
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (await api.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"
    before = {
        s.index: (s.finished_at, s.runs) for s in (await _shards(sessionmaker, job_id))["caption"]
    }
    finished = {i for i, (at, _) in before.items() if at is not None}
    assert finished == {0, 1, 2}

    second = CountingTransport(caption_app)
    assert await run(job_id, settings, sessionmaker, second) == "succeeded"
    after = {s.index: s for s in (await _shards(sessionmaker, job_id))["caption"]}
    assert all(after[i].finished_at == before[i][0] and after[i].runs == 1 for i in finished)
    assert after[3].runs == 2 and all(s.state == "done" for s in after.values())
    # The batch in flight at the stop is sent again; nothing stored is.
    assert first.images_sent - 2 + second.images_sent == 31
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Caption)) == 31
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert job["progress"]["caption"]["done"] == 31 and job["attempts"] == 2


async def test_a_shard_task_runs_its_shard_only_while_the_job_runs_and_once(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    """The queued shard tasks of a finished job find their shards done; those of a job
    cancelled (or queued again) leave them alone."""
    settings = analysis_settings.model_copy(update={"shard_size": 4})
    job_id = await submit(api, str(dataset))
    transport = Transports(caption=CountingTransport(caption_app))
    assert await run(job_id, settings, sessionmaker, transport.caption) == "succeeded"
    async with sessionmaker() as session:
        queued = (
            (
                await session.execute(
                    text("SELECT args FROM procrastinate_jobs WHERE task_name = :task"),
                    {"task": RUN_SHARD_TASK},
                )
            )
            .scalars()
            .all()
        )
    # One per shard but the first of each stage, which the job's run takes itself at once.
    assert sorted((a["stage"], a["index"]) for a in queued) == sorted(
        [("scan", i) for i in range(1, 9)]
        + [("caption", i) for i in range(1, 8)]
        + [("discover", i) for i in range(1, 3)]
    )
    for args in queued:
        ran = await run_shard(
            uuid.UUID(job_id), args["stage"], args["index"], settings, sessionmaker, transport
        )
        assert ran is False
    assert all(s.runs == 1 for rows in (await _shards(sessionmaker, job_id)).values() for s in rows)

    # A shard of a job with a cancel asked for is left alone; while the job runs, it is run.
    other = uuid.UUID(await submit(api, str(dataset)))
    params = {"id": other}
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE job SET status = 'running', cancel_requested = true WHERE id = :id"),
            params,
        )
        await session.execute(
            text(
                "INSERT INTO job_shard (job_id, stage, index, state, done, total, runs) "
                "VALUES (:id, 'scan', 0, 'pending', 0, 33, 0)"
            ),
            params,
        )
    assert not await run_shard(other, "scan", 0, settings, sessionmaker, transport)
    assert (await _shards(sessionmaker, str(other)))["scan"][0].runs == 0
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE job SET cancel_requested = false WHERE id = :id"), params
        )
    assert await run_shard(other, "scan", 0, settings, sessionmaker, transport)
    shard = (await _shards(sessionmaker, str(other)))["scan"][0]
    assert (shard.state, shard.runs, shard.done) == ("done", 1, 33)
    assert not await run_shard(other, "scan", 0, settings, sessionmaker, transport)
    async with sessionmaker() as session:
        links = select(func.count()).select_from(JobImage).where(JobImage.job_id == other)
        assert await session.scalar(links) == 33


async def test_a_shard_another_runner_could_not_finish_fails_the_job_and_a_retry_finishes_it(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    settings = analysis_settings.model_copy(update={"shard_size": 4, "caption_concurrency": 1})
    job_id = await submit(api, str(dataset))
    coordinator = CountingTransport(caption_app)
    elsewhere = Transports(caption=CountingTransport(caption_app, fail_when=lambda n: True))
    outcomes: list[bool] = []

    async def a_worker_fails_shard_1() -> None:
        if not outcomes:
            job = uuid.UUID(job_id)
            outcomes.append(await run_shard(job, "caption", 1, settings, sessionmaker, elsewhere))

    coordinator.before_call = a_worker_fails_shard_1
    assert await run(job_id, settings, sessionmaker, coordinator) == "failed"
    assert outcomes == [False]
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert "caption service unavailable after 3 attempts" in job["error"]
    assert "connection refused" in job["error"]
    shard = (await _shards(sessionmaker, job_id))["caption"][1]
    assert (shard.state, shard.runs) == ("pending", 1) and "unavailable" in shard.error

    assert (await api.post(f"/v1/jobs/{job_id}/retry")).status_code == 202
    assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) == (
        "succeeded"
    )
    shard = (await _shards(sessionmaker, job_id))["caption"][1]
    assert (shard.state, shard.runs, shard.error) == ("done", 2, None)


@pytest.fixture
def odd_name(data_root: Path) -> Path:
    root = make_dataset(data_root / "pets", per_class=3)
    odd = Path(os.fsdecode(os.path.join(os.fsencode(root / "cat"), b"caf\xe9.jpg")))
    odd.write_bytes((root / "cat" / "00.jpg").read_bytes())
    return root


async def test_a_file_name_that_is_not_utf8_never_bounds_a_shard(
    api, analysis_settings, sessionmaker, caption_app, odd_name
):
    """Such a name cannot be stored: the file joins the shard before, and is listed invalid."""
    root = odd_name
    # Walk order: cat/00, 01, 02, caf\xe9, dog/00, 01, 02; by 3, the fourth would start one.
    settings = analysis_settings.model_copy(update={"shard_size": 3})
    job_id = await submit(api, str(root))
    assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) == (
        "succeeded"
    )
    scan = (await _shards(sessionmaker, job_id))["scan"]
    assert [(s.lo, s.hi, s.done) for s in scan] == [
        (None, "dog/00.jpg", 4),
        ("dog/00.jpg", None, 3),
    ]
    invalid = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    assert [i["reason"] for i in invalid] == ["file name is not valid UTF-8"]


async def test_a_caption_shard_pages_with_one_statement_built_once(
    api, analysis_settings, sessionmaker, caption_app, dataset, monkeypatch
):
    job_id = await submit(api, str(dataset))
    assert await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app)) == (
        "succeeded"
    )
    job, key = uuid.UUID(job_id), "a key nothing was captioned under"
    async with sessionmaker() as session:
        everything = await captions.pending_page(session, job, key, 0, 1000)
        # Building the statement (its subqueries and aliases) cost a reader more than running
        # it, page after page: it is built once, not per page.
        monkeypatch.setattr(captions, "_pending", None)
        paged, after = [], 0
        while page := await captions.pending_page(session, job, key, after, 4):
            paged += page
            after = page[-1].image_id
        middle = everything[10].image_id
        below = await captions.pending_page(session, job, key, 0, 1000, before=middle)
    assert len(everything) == 31 and paged == everything  # the twin is listed once
    assert below == everything[:10]
