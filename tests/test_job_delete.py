"""DELETE /v1/jobs/{id}: a job's results go, with the images and captions no other job uses;
other jobs and the dataset's files stay as they were; a running job is stopped first."""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import Path

from sqlalchemy import func, select

from analysis_service.jobs import lifecycle
from analysis_service.models import (
    Assignment,
    Caption,
    Dataset,
    Dimension,
    Image,
    Job,
    JobEvent,
    JobImage,
)
from analysis_service.pipeline import scan
from analysis_service.pipeline.context import RunContext, Transports
from analysis_service.pipeline.runner import run_shard
from analysis_service.shards import repository as shards
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, answers, run, submit
from tests.test_job_lifecycle import _queue_entry_run_by_a_worker


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def _count(sessionmaker, model, *where) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def test_deleting_a_finished_job_removes_what_only_it_used(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    root = make_dataset(data_root / "pets", per_class=6)
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    subpops_a = (await api.get(f"/v1/jobs/{job_a}/subpopulations")).json()["items"]
    # Job B sees one file changed and one added: A alone used the old version of the first.
    write_image(root / "cat" / "00.jpg", color=(250, 10, 10), bottom=(250, 250, 0))
    write_image(root / "dog" / "new.jpg", color=(5, 5, 5), marker=4242)
    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"
    answers_b = await answers(api, job_b)
    files = _files(data_root)
    assert await _count(sessionmaker, Caption) == 14

    resp = await api.delete(f"/v1/jobs/{job_a}")
    assert resp.status_code == 204 and resp.content == b""

    for path in ("", "/structure", "/subpopulations", "/invalid-images", "/events"):
        assert (await api.get(f"/v1/jobs/{job_a}{path}")).status_code == 404, path
    assert (await api.get(f"/v1/jobs/{job_a}/assignments")).status_code == 404
    for sub in subpops_a:
        assert (await api.get(f"/v1/subpopulations/{sub['id']}/images")).status_code == 404
    assert (await api.post(f"/v1/jobs/{job_a}/retry")).status_code == 404
    listed = (await api.get("/v1/jobs")).json()
    assert [j["id"] for j in listed["items"]] == [job_b] and listed["total"] == 1

    # The other job answers as before, and the files are as they were.
    after_b = await answers(api, job_b)
    for url, body in answers_b.items():
        assert after_b[url] == body, url
    assert _files(data_root) == files
    # What only A used is gone: the old version of cat/00.jpg and its caption.
    a_id = uuid.UUID(job_a)
    assert await _count(sessionmaker, Caption) == 13
    assert await _count(sessionmaker, Image) == await _count(sessionmaker, JobImage) == 13
    for model in (JobImage, Assignment, Dimension, JobEvent):
        assert await _count(sessionmaker, model, model.job_id == a_id) == 0
    assert await _count(sessionmaker, Dataset) == 1

    again = await api.delete(f"/v1/jobs/{job_a}")
    assert again.status_code == 404 and again.json()["error"] == "not_found"


async def test_unknown_or_malformed_ids_are_404(api):
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await api.delete(f"/v1/jobs/{job_id}")
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"


async def test_deleting_a_queued_job_cancels_and_deletes_it(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    make_dataset(data_root / "pets", per_class=2)
    job_id = await submit(api, "pets")
    assert (await api.delete(f"/v1/jobs/{job_id}")).status_code == 204
    # The worker that picks its queue entry up finds nothing to run.
    transport = CountingTransport(caption_app)
    assert await run(job_id, analysis_settings, sessionmaker, transport) is None
    assert transport.caption_calls == 0
    assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 404


async def test_deleting_a_running_job_stops_it_first(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    make_dataset(data_root / "pets", per_class=8)
    settings = analysis_settings.model_copy(
        update={"caption_concurrency": 1, "caption_batch_size": 4}
    )
    job_id = await submit(api, "pets")
    # A worker attends it (its heartbeat is recent): the cancel is only asked for.
    await _queue_entry_run_by_a_worker(sessionmaker, uuid.UUID(job_id), 1)
    transport = CountingTransport(caption_app)
    refusals = []

    async def delete_now() -> None:
        if not refusals:
            refusals.append(await api.delete(f"/v1/jobs/{job_id}"))

    transport.before_call = delete_now
    assert await run(job_id, settings, sessionmaker, transport) == "cancelled"
    assert transport.caption_calls <= 2
    assert refusals[0].status_code == 409
    assert "running" in refusals[0].json()["detail"]
    assert "delete it again once it has ended" in refusals[0].json()["detail"]
    assert (await api.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 404
    # Nothing of it is left: no other job used its images or captions.
    assert await _count(sessionmaker, Image) == await _count(sessionmaker, Caption) == 0


async def test_a_job_deleted_the_moment_it_ends_leaves_its_run_no_error(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, monkeypatch
):
    """Seen on a running service: DELETE, refused with 409 while the job ran, sent again as
    soon as the job had ended, removed the job before its run wrote the outcome's event, and
    the run failed on the event's foreign key. The outcome's event belongs to the transaction
    that ends the job, so no event is written after the job may be deleted."""
    make_dataset(data_root / "pets", per_class=2)
    job_id = await submit(api, "pets")
    deleted = []
    original = RunContext.event

    async def event_after_a_delete(ctx: RunContext, kind: str, message: str | None = None):
        # Whatever the run writes once its job has ended comes after the user's DELETE.
        status = await _status(sessionmaker, job_id)
        if status in {s.value for s in lifecycle.TERMINAL} and not deleted:
            deleted.append((await api.delete(f"/v1/jobs/{job_id}")).status_code)
        await original(ctx, kind, message)

    monkeypatch.setattr(RunContext, "event", event_after_a_delete)
    transport = CountingTransport(caption_app)
    assert await run(job_id, analysis_settings, sessionmaker, transport) == "succeeded"
    if not deleted:  # nothing was written after the end: the user deletes it now
        assert (await api.delete(f"/v1/jobs/{job_id}")).status_code == 204
    else:
        assert deleted == [204]
    assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 404
    assert await _count(sessionmaker, JobEvent) == 0


async def _status(sessionmaker, job_id: str) -> str | None:
    async with sessionmaker() as session:
        return await session.scalar(select(Job.status).where(Job.id == uuid.UUID(job_id)))


async def test_deleting_a_running_job_whose_worker_is_gone_deletes_it(
    api, sessionmaker, data_root: Path
):
    make_dataset(data_root / "pets", per_class=2)
    job_id = await submit(api, "pets")
    async with sessionmaker() as session, session.begin():
        assert await lifecycle.claim(session, uuid.UUID(job_id)) is not None
    # No worker sends heartbeats for it: the cancel ends it at once, and it is deleted.
    assert (await api.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await api.get(f"/v1/jobs/{job_id}")).status_code == 404


async def test_a_scan_reusing_images_of_a_job_deleted_meanwhile_stores_them_again(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, monkeypatch
):
    """A is deleted once B's first batch (4 files) is linked: those versions stay (B links
    them), A's other ones go, and B reads those 8 files again and stores them anew."""
    make_dataset(data_root / "pets", per_class=6)
    settings = analysis_settings.model_copy(update={"ingest_batch_size": 4})
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, settings, sessionmaker, transport) == "succeeded"
    real_link = scan._link_unchanged
    deleted, to_read = [], []

    async def link_then_delete_a(*args):  # type: ignore[no-untyped-def]
        found = await real_link(*args)
        to_read.append(len(found))
        if not deleted:
            deleted.append((await api.delete(f"/v1/jobs/{job_a}")).status_code)
        return found

    monkeypatch.setattr(scan, "_link_unchanged", link_then_delete_a)
    job_b = await submit(api, "pets")
    assert await run(job_b, settings, sessionmaker, transport) == "succeeded"
    assert deleted == [204]
    assert to_read[:3] == [0, 4, 4]  # the plan's batches; then the shards' own
    job = (await api.get(f"/v1/jobs/{job_b}")).json()
    assert (job["images"], job["valid"]) == (12, 12)
    rows = (await api.get(f"/v1/jobs/{job_b}/assignments?limit=10000")).json()["items"]
    assert len({row["image"] for row in rows}) == 12


def _deleting_the_job_after_the_first_batch(api, job_id: uuid.UUID, monkeypatch) -> list[int]:
    """Each DELETE's status, sent once the first batch of the scan is read and before it is
    stored; no worker attends the job, so the DELETE stops and deletes it at once."""
    real_examine = scan._examine_batch
    deleted: list[int] = []

    async def examine_then_delete(*args):  # type: ignore[no-untyped-def]
        found = await real_examine(*args)
        if not deleted:
            deleted.append((await api.delete(f"/v1/jobs/{job_id}")).status_code)
        return found

    monkeypatch.setattr(scan, "_examine_batch", examine_then_delete)
    return deleted


def _what_was_logged(caplog) -> tuple[list[str], list[str]]:
    """(messages at warning or above, or with a traceback; info messages about a deletion)."""
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    told = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and "deleted" in r.getMessage()
    ]
    return loud, told


async def test_a_shard_whose_job_is_deleted_mid_batch_ends_quietly(
    api, analysis_settings, sessionmaker, data_root: Path, monkeypatch, caplog
):
    """Another worker's shard task stores its batch after the job's row is gone (the links
    of the batch's images fail on the job's foreign key): one line says so, no traceback."""
    make_dataset(data_root / "pets", per_class=10)
    job_id = uuid.UUID(await submit(api, "pets"))
    async with sessionmaker() as session, session.begin():
        assert await lifecycle.claim(session, job_id) is not None
        await shards.create(session, job_id, "scan", [shards.Span(None, None, 20)], "planner")
    deleted = _deleting_the_job_after_the_first_batch(api, job_id, monkeypatch)
    settings = analysis_settings.model_copy(update={"ingest_batch_size": 4})
    with caplog.at_level(logging.INFO):
        ran = await run_shard(job_id, "scan", 0, settings, sessionmaker, Transports())
    assert deleted == [204] and ran is False
    loud, told = _what_was_logged(caplog)
    assert loud == [] and len(told) == 1 and str(job_id) in told[0]
    assert await _count(sessionmaker, JobImage, JobImage.job_id == job_id) == 0


async def test_a_job_deleted_mid_batch_under_its_own_run_ends_quietly(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, monkeypatch, caplog
):
    make_dataset(data_root / "pets", per_class=10)
    job_id = await submit(api, "pets")
    deleted = _deleting_the_job_after_the_first_batch(api, uuid.UUID(job_id), monkeypatch)
    settings = analysis_settings.model_copy(update={"ingest_batch_size": 4})
    with caplog.at_level(logging.INFO):
        assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) is None
    assert deleted == [204]
    loud, told = _what_was_logged(caplog)
    assert loud == [] and len(told) == 1 and job_id in told[0]
