"""Whole jobs through the real pipeline, in-process, against the real caption app."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from analysis_service.jobs.lifecycle import JobStatus
from analysis_service.models import Assignment, Caption, Dimension, Job
from tests.builders import image_bytes, make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, run, submit


@pytest.fixture
def dataset(data_root: Path) -> Path:
    root = make_dataset(data_root / "pets", per_class=8)
    (root / "cat" / "zero.jpg").write_bytes(b"")
    (root / "cat" / "notes.txt").write_text("not an image")
    good = image_bytes(size=(300, 200))
    (root / "dog" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "dog" / "sub" / "deeper").mkdir(parents=True)
    write_image(root / "dog" / "sub" / "deeper" / "nested.png", color=(250, 250, 250))
    (root / "stray.jpg").write_bytes(good)
    return root


async def test_job_succeeds_and_every_valid_image_is_assigned_once_per_dimension(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    job_id = await submit(api, str(dataset))
    assert await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app)) == (
        "succeeded"
    )
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded" and job["error"] is None
    assert (job["images"], job["valid"], job["invalid"]) == (21, 17, 4)
    assert set(job["progress"]) == {"scan", "caption", "discover", "summarize"}
    assert job["progress"]["caption"]["done"] == job["progress"]["caption"]["total"] == 17
    assert job["caption_engine"] == "pixel/pixel-statistics"

    structure = (await api.get(f"/v1/jobs/{job_id}/structure")).json()
    assert [c["class"] for c in structure["classes"]] == ["cat", "dog"]
    for cls in structure["classes"]:
        assert cls["dimensions"], cls["class"]
        for dim in cls["dimensions"]:
            real = [a for a in dim["attributes"] if not a["is_other"]]
            assert len(real) >= 2
            # A partition: every image of the class in exactly one attribute.
            assert sum(a["size"] for a in dim["attributes"]) == cls["images"]

    async with sessionmaker() as session:
        dims = await session.scalar(select(func.count()).select_from(Dimension))
        rows = await session.scalar(select(func.count()).select_from(Assignment))
        per_image = await session.execute(
            text(
                "SELECT count(*) FROM assignment "
                "GROUP BY image_id, dimension_id HAVING count(*) > 1"
            )
        )
        assert per_image.first() is None
    assert (
        rows == sum(cls["images"] * len(cls["dimensions"]) for cls in structure["classes"]) and dims
    )


async def test_invalid_files_are_listed_with_reasons(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    job_id = await submit(api, str(dataset))
    await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app))
    page = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()
    reasons = {item["path"]: item["reason"] for item in page["items"]}
    assert page["total"] == 4
    assert "empty file" in reasons["cat/zero.jpg"]
    assert "not a recognised image format" in reasons["cat/notes.txt"]
    assert "truncated" in reasons["dog/truncated.jpg"]
    assert reasons["stray.jpg"] == "file outside the class folders"


async def test_over_limit_files_are_invalid_not_fatal(
    api, analysis_settings, sessionmaker, caption_app, data_root
):
    root = make_dataset(data_root / "pets", per_class=4)
    write_image(root / "cat" / "huge.png", size=(400, 400))
    settings = analysis_settings.model_copy(update={"max_image_pixels": 100_000})
    job_id = await submit(api, str(root))
    assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) == "succeeded"
    items = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    assert [(i["path"], "too many pixels" in i["reason"]) for i in items] == [
        ("cat/huge.png", True)
    ]


async def test_queries_filter_and_list_images_with_captions(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    job_id = await submit(api, str(dataset))
    await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app))
    subpops = (await api.get(f"/v1/jobs/{job_id}/subpopulations")).json()["items"]
    assert {"id", "class", "dimension", "attribute", "size", "share"} <= set(subpops[0])
    cats = (await api.get(f"/v1/jobs/{job_id}/subpopulations", params={"class": "cat"})).json()[
        "items"
    ]
    assert cats and {s["class"] for s in cats} == {"cat"}
    dim = cats[0]["dimension"]
    one_dim = (
        await api.get(
            f"/v1/jobs/{job_id}/subpopulations", params={"class": "cat", "dimension": dim}
        )
    ).json()["items"]
    assert {s["dimension"] for s in one_dim} == {dim}
    big = (await api.get(f"/v1/jobs/{job_id}/subpopulations", params={"min_size": 3})).json()[
        "items"
    ]
    assert all(s["size"] >= 3 for s in big) and len(big) < len(subpops)

    largest = max(cats, key=lambda s: s["size"])
    page = (await api.get(f"/v1/subpopulations/{largest['id']}/images", params={"limit": 2})).json()
    assert page["total"] == largest["size"] and len(page["items"]) == 2
    item = page["items"][0]
    assert item["path"].startswith("cat/") and not item["path"].startswith("/")
    assert item["caption"] and item["class"] == "cat"


async def test_resubmitting_the_folder_reuses_scans_and_captions(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    first = CountingTransport(caption_app)
    await run(await submit(api, str(dataset)), analysis_settings, sessionmaker, first)
    assert first.images_sent == 17
    second = CountingTransport(caption_app)
    job_id = await submit(api, str(dataset))
    assert await run(job_id, analysis_settings, sessionmaker, second) == "succeeded"
    assert second.images_sent == 0
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Caption)) == 17


async def test_identical_files_are_captioned_once(
    api, analysis_settings, sessionmaker, caption_app, data_root
):
    root = data_root / "dups"
    for cls in ("a", "b"):
        for i in range(3):
            write_image(root / cls / f"{i}.jpg", color=(10, 20, 30))
    transport = CountingTransport(caption_app)
    job_id = await submit(api, str(root))
    assert await run(job_id, analysis_settings, sessionmaker, transport) == "succeeded"
    assert transport.images_sent == 1
    assert (await api.get(f"/v1/jobs/{job_id}")).json()["valid"] == 6


async def test_caption_service_down_fails_clearly_keeps_work_and_retry_resumes(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    # Batches of 8: the first two succeed, then the service goes away for good.
    settings = analysis_settings.model_copy(update={"caption_concurrency": 1})
    down = CountingTransport(caption_app, fail_when=lambda n: n > 2)
    job_id = await submit(api, str(dataset))
    assert await run(job_id, settings, sessionmaker, down) == "failed"
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert "caption service unavailable after 3 attempts" in job["error"]
    assert "connection refused" in job["error"]
    async with sessionmaker() as session:
        kept = await session.scalar(select(func.count()).select_from(Caption))
    assert kept == 16

    assert (await api.post(f"/v1/jobs/{job_id}/retry")).status_code == 202
    back = CountingTransport(caption_app)
    assert await run(job_id, settings, sessionmaker, back) == "succeeded"
    assert back.images_sent == 1  # only what was missing
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert job["attempts"] == 2 and job["valid"] == 17
    events = (await api.get(f"/v1/jobs/{job_id}/events")).json()
    assert [e["kind"] for e in events] == ["started", "failed", "started", "succeeded"]
    assert "caption service unavailable" in events[1]["message"]


async def test_cancel_stops_a_running_job_at_the_next_batch(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    settings = analysis_settings.model_copy(update={"caption_concurrency": 1})
    job_id = await submit(api, str(dataset))
    transport = CountingTransport(caption_app)

    async def cancel_now() -> None:
        await api.post(f"/v1/jobs/{job_id}/cancel")

    transport.before_call = cancel_now
    assert await run(job_id, settings, sessionmaker, transport) == "cancelled"
    assert transport.caption_calls <= 2
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "cancelled" and job["finished_at"]


async def test_a_finished_job_is_not_run_again(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    job_id = await submit(api, str(dataset))
    await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app))
    again = CountingTransport(caption_app)
    assert await run(job_id, analysis_settings, sessionmaker, again) == "succeeded"
    assert again.caption_calls == 0


async def test_rerunning_an_interrupted_job_adds_no_duplicates(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    """Simulates a worker killed after discovery wrote some rows: state says 'running'."""
    job_id = await submit(api, str(dataset))
    await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app))
    async with sessionmaker() as session, session.begin():
        before = await session.scalar(select(func.count()).select_from(Assignment))
        # Forge what a worker killed mid-discovery leaves behind: the job still running and
        # discovery and summary not done (a state no code writes on purpose).
        await session.execute(
            update(Job).values(
                status=JobStatus.RUNNING,
                progress=Job.progress.op("-")("discover").op("-")("summarize"),
            )
        )
        await session.execute(text("UPDATE job_class SET assigned_at = NULL"))
    assert await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app)) == (
        "succeeded"
    )
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Assignment)) == before
        assert await session.scalar(select(func.count()).select_from(Dimension)) > 0


async def test_two_runners_of_one_job_never_overlap(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    import asyncio

    job_id = await submit(api, str(dataset))
    outcomes = await asyncio.gather(
        run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app)),
        run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app)),
    )
    assert sorted(outcomes, key=str) == [None, "succeeded"]
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert job["attempts"] == 1


async def test_a_finished_job_leaves_planner_statistics_for_what_it_wrote(
    api, analysis_settings, sessionmaker, caption_app, dataset
):
    """Slices, groups and exports aggregate right after a job: the bulk-written tables must not
    look empty to the planner until autovacuum comes."""
    job_id = await submit(api, str(dataset))
    await run(job_id, analysis_settings, sessionmaker, CountingTransport(caption_app))
    async with sessionmaker() as session:
        analyzed = await session.scalars(
            text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND relname IN ('image', 'job_image', 'caption', 'assignment')"
            )
        )
        assert set(analyzed) == {"image", "job_image", "caption", "assignment"}
