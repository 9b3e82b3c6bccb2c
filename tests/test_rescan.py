"""A later scan of the same folder reads only the files that changed: a stored version is kept
while the file's size, mtime, ctime and inode are all unchanged."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from analysis_service.datasets import repository as datasets
from analysis_service.datasets import scanner
from analysis_service.datasets.layout import iter_files
from analysis_service.models import Image, Job, JobImage, JobShard
from analysis_service.pipeline import scan
from tests.builders import image_bytes, make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, run, submit


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the scan reads (names, in order): a spy on what it sends to its scanning
    processes, passing through."""
    seen: list[str] = []
    real = scan._examined

    async def counted(ctx, root: Path, files: list[scanner.ScannedFile]):  # type: ignore[no-untyped-def]
        seen.extend(Path(f.relpath).name for f in files)
        return await real(ctx, root, files)

    monkeypatch.setattr(scan, "_examined", counted)
    return seen


async def versions(sessionmaker, job_id: str) -> dict[str, tuple[int, str | None]]:
    """relpath -> (image id, content hash) of the versions a job saw."""
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Image.relpath, Image.id, Image.content_hash)
            .join(JobImage, JobImage.image_id == Image.id)
            .where(JobImage.job_id == uuid.UUID(job_id))
        )
        return {relpath: (image_id, content_hash) for relpath, image_id, content_hash in rows}


async def test_a_rescan_of_an_unchanged_folder_reads_no_file_and_keeps_every_version(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    make_dataset(data_root / "pets", per_class=5)
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    assert len(reads) == 10
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"
    assert reads == []
    assert await versions(sessionmaker, job_b) == await versions(sessionmaker, job_a)


async def test_a_file_rewritten_with_its_size_and_mtime_put_back_gets_a_new_version(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """BMP bytes of one size in any colour: the new content has the old size, and the old
    mtime is set back; only its ctime, which no user can set, tells."""
    root = make_dataset(data_root / "pets", per_class=3)
    path = root / "cat" / "painted.bmp"
    path.write_bytes(image_bytes(color=(200, 30, 30), fmt="BMP"))
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    before = path.stat()
    path.write_bytes(image_bytes(color=(30, 30, 200), fmt="BMP"))  # same file, same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert after.st_ctime_ns != before.st_ctime_ns
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"
    assert reads == ["painted.bmp"]
    seen_a, seen_b = await versions(sessionmaker, job_a), await versions(sessionmaker, job_b)
    assert seen_b["cat/painted.bmp"][0] != seen_a["cat/painted.bmp"][0]
    assert seen_b["cat/painted.bmp"][1] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert seen_a["cat/painted.bmp"][1] != seen_b["cat/painted.bmp"][1]  # A keeps what it saw
    unchanged = set(seen_a) - {"cat/painted.bmp"}
    assert {p: seen_b[p] for p in unchanged} == {p: seen_a[p] for p in unchanged}


async def test_a_file_replaced_by_another_of_the_same_size_and_mtime_is_read_again(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """A file swapped for another (a new inode) with size and mtime copied over."""
    root = make_dataset(data_root / "pets", per_class=2)
    path = root / "dog" / "painted.bmp"
    path.write_bytes(image_bytes(color=(10, 200, 10), fmt="BMP"))
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    before = path.stat()
    swap = path.with_name("swap.tmp")
    swap.write_bytes(image_bytes(color=(200, 200, 10), fmt="BMP"))
    os.utime(swap, ns=(before.st_atime_ns, before.st_mtime_ns))
    swap.replace(path)
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"
    assert reads == ["painted.bmp"]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (await versions(sessionmaker, job_b))["dog/painted.bmp"][1] == sha


async def test_versions_scanned_without_ctime_and_inode_are_read_once_more(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """Versions stored before ctime and inode were kept (null) are not trusted: their files
    are read by the next scan, which stores versions that later scans trust."""
    make_dataset(data_root / "pets", per_class=3)
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Image).values(ctime_ns=None, inode=None))
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"
    assert len(reads) == 6
    seen_a, seen_b = await versions(sessionmaker, job_a), await versions(sessionmaker, job_b)
    assert {p: h for p, (_, h) in seen_b.items()} == {p: h for p, (_, h) in seen_a.items()}
    reads.clear()
    job_c = await submit(api, "pets")
    assert await run(job_c, analysis_settings, sessionmaker, transport) == "succeeded"
    assert reads == []
    assert await versions(sessionmaker, job_c) == seen_b


async def test_a_rescan_in_batches_reads_exactly_the_changed_files_wherever_they_fall(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """Batches of 3, each compared in two parts side by side: changed files first and last
    in a batch and in a part, and alone in one; each is read and gets a new version, and
    every other file keeps the version the first job saw."""
    root = make_dataset(data_root / "pets", per_class=5)
    settings = analysis_settings.model_copy(update={"ingest_batch_size": 3})
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, settings, sessionmaker, transport) == "succeeded"
    # In walk order the batches are cat 00-02, cat 03-04 + dog 00, dog 01-03, dog 04.
    changed = {"cat/00.jpg", "cat/02.jpg", "dog/00.jpg", "dog/04.jpg"}
    for relpath in changed:
        st = (root / relpath).stat()
        os.utime(root / relpath, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, settings, sessionmaker, transport) == "succeeded"
    assert sorted(reads) == sorted(Path(p).name for p in changed)
    seen_a, seen_b = await versions(sessionmaker, job_a), await versions(sessionmaker, job_b)
    assert set(seen_b) == set(seen_a) and len(seen_b) == 10
    assert {p for p in seen_b if seen_b[p][0] != seen_a[p][0]} == changed
    assert all(seen_b[p][1] == seen_a[p][1] for p in changed)  # same bytes, same hash


async def scan_shards(sessionmaker, job_id: str) -> list[JobShard]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(JobShard)
            .where(JobShard.job_id == uuid.UUID(job_id), JobShard.stage == "scan")
            .order_by(JobShard.index)
        )
        return list(rows)


async def test_a_rescan_of_an_unchanged_folder_runs_no_scan_shard(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """Planning compares the files with their versions (in batches that straddle the
    shards) and links them: every shard is created done, by the planner, and none is run."""
    make_dataset(data_root / "pets", per_class=5)
    settings = analysis_settings.model_copy(update={"shard_size": 3, "ingest_batch_size": 4})
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, settings, sessionmaker, transport) == "succeeded"
    assert all(s.runs == 1 for s in await scan_shards(sessionmaker, job_a))
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, settings, sessionmaker, transport) == "succeeded"
    assert reads == []
    shards = await scan_shards(sessionmaker, job_b)
    assert [(s.total, s.done, s.state, s.runs) for s in shards] == [(3, 3, "done", 0)] * 3 + [
        (1, 1, "done", 0)
    ]
    assert all(s.finished_by and s.finished_at for s in shards)
    scan = (await api.get(f"/v1/jobs/{job_b}")).json()["progress"]["scan"]
    assert (scan["done"], scan["total"]) == (10, 10)
    assert await versions(sessionmaker, job_b) == await versions(sessionmaker, job_a)


async def test_a_rescan_runs_only_the_shards_that_hold_a_file_to_read(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """A changed file and a new one: their shards run (and read just them), the others are
    done from the plan, and the job sees every file."""
    root = make_dataset(data_root / "pets", per_class=5)
    settings = analysis_settings.model_copy(update={"shard_size": 3, "ingest_batch_size": 4})
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, settings, sessionmaker, transport) == "succeeded"
    # In walk order the shards are cat 00-02, cat 03-04 + dog 00, dog 01-03, dog 04-05.
    st = (root / "cat" / "03.jpg").stat()
    os.utime(root / "cat" / "03.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    write_image(root / "dog" / "05.jpg", color=(9, 99, 199))
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, settings, sessionmaker, transport) == "succeeded"
    assert sorted(reads) == ["03.jpg", "05.jpg"]
    shards = await scan_shards(sessionmaker, job_b)
    assert [(s.total, s.done, s.runs) for s in shards] == [
        (3, 3, 0),
        (3, 3, 1),
        (3, 3, 0),
        (2, 2, 1),
    ]
    seen_a, seen_b = await versions(sessionmaker, job_a), await versions(sessionmaker, job_b)
    assert set(seen_b) == set(seen_a) | {"dog/05.jpg"}
    assert {p for p in seen_a if seen_b[p] != seen_a[p]} == {"cat/03.jpg"}
    scan = (await api.get(f"/v1/jobs/{job_b}")).json()["progress"]["scan"]
    assert (scan["done"], scan["total"]) == (11, 11)


async def test_a_rescan_that_stores_no_version_refreshes_the_statistics_of_the_links_only(
    api,
    analysis_settings,
    sessionmaker,
    caption_app,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """ANALYZE of the versions' table (a tenth of a second at 40,000 rows) only after a
    scan that stored versions; the links' statistics after every scan."""
    root = make_dataset(data_root / "pets", per_class=2)
    analyzed: list[bool] = []
    real = datasets.analyze_images

    async def spied(session, *, versions: bool = True) -> None:  # type: ignore[no-untyped-def]
        analyzed.append(versions)
        await real(session, versions=versions)

    monkeypatch.setattr(datasets, "analyze_images", spied)
    transport = CountingTransport(caption_app)
    for change in (None, None, "cat/01.jpg"):
        if change is not None:
            st = (root / change).stat()
            os.utime(root / change, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        job = await submit(api, "pets")
        assert await run(job, analysis_settings, sessionmaker, transport) == "succeeded"
    assert analyzed == [True, False, True]


async def test_a_special_file_keeps_its_version_while_it_stays_the_same(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, reads: list[str]
):
    """A FIFO is invalid from its stat alone and never opened; a re-scan that finds it as it
    was keeps its version, invalid for the same reason."""
    make_dataset(data_root / "pets", per_class=2)
    os.mkfifo(data_root / "pets" / "cat" / "pipe.jpg")
    transport = CountingTransport(caption_app)
    job_a = await submit(api, "pets")
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    reads.clear()
    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"
    assert reads == []
    assert await versions(sessionmaker, job_b) == await versions(sessionmaker, job_a)
    async with sessionmaker() as session:
        pipe = (
            (
                await session.execute(
                    select(Image.invalid_reason).where(Image.relpath == "cat/pipe.jpg")
                )
            )
            .scalars()
            .all()
        )
    assert len(pipe) == 1 and "not a regular file" in (pipe[0] or "")


async def _until_a_statement_waits_for_a_lock(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(30):
        while True:
            async with sessionmaker() as session:
                if await session.scalar(waiting):
                    return
            await asyncio.sleep(0.05)


async def test_versions_deleted_while_a_scan_waited_for_the_dataset_are_read_again(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    """A job deletion holds the dataset and deletes the versions only its job saw; a scan
    comparing a batch meanwhile waits for the dataset, then finds those versions gone: it
    links none of them and asks for every file to be read again (no foreign key error)."""
    root = make_dataset(data_root / "pets", per_class=2)
    job_a = await submit(api, "pets")
    transport = CountingTransport(caption_app)
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    job_b = uuid.UUID(await submit(api, "pets"))  # queued: its scan is run by hand below
    stats = [scanner.stat_file(str(root), rel, cls) for rel, cls in iter_files(root)]
    async with sessionmaker() as session:
        dataset_id = await session.scalar(select(Job.dataset_id).where(Job.id == job_b))
    async with sessionmaker() as scanning, sessionmaker() as deleting:
        async with deleting.begin():
            await datasets.hold_dataset(deleting, dataset_id, exclusive=True)
            comparing = asyncio.ensure_future(
                datasets.link_unchanged(scanning, dataset_id, job_b, stats)
            )
            await _until_a_statement_waits_for_a_lock(sessionmaker)
            await datasets.delete_unshared_images(deleting, uuid.UUID(job_a))
        changed = await comparing
    assert [f.relpath for f in changed] == [f.relpath for f in stats]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Image)) == 0
        links = select(func.count()).select_from(JobImage).where(JobImage.job_id == job_b)
        assert await session.scalar(links) == 0


def test_stat_all_tells_what_stat_file_tells_of_each_file(data_root: Path):
    """Files stat'ed by name in their opened folder: the same facts and reasons as by path,
    at the root, in nested folders, for special files, broken links and names that are not
    UTF-8, and for the files of a folder gone since the walk."""
    root = make_dataset(data_root / "pets", per_class=2)
    (root / "stray.jpg").write_bytes(b"x")
    (root / "cat" / "deep" / "er").mkdir(parents=True)
    write_image(root / "cat" / "deep" / "er" / "a.png", color=(1, 2, 3))
    os.mkfifo(root / "cat" / "pipe.jpg")
    (root / "dog" / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    with open(os.path.join(os.fsencode(root / "dog"), b"caf\xe9.jpg"), "wb") as out:
        out.write(b"y")
    (root / "owl" / "gone").mkdir(parents=True)
    write_image(root / "owl" / "gone" / "b.png", color=(4, 5, 6))
    entries = list(iter_files(root))
    assert len(entries) == 10
    expected = [scanner.stat_file(str(root), rel, cls) for rel, cls in entries]
    assert scanner.stat_all(str(root), entries) == expected
    shutil.rmtree(root / "owl" / "gone")
    again = scanner.stat_all(str(root), entries)
    assert again == [scanner.stat_file(str(root), rel, cls) for rel, cls in entries]
    gone = {a.relpath: a.invalid_reason for a, e in zip(again, expected, strict=True) if a != e}
    assert gone == {"owl/gone/b.png": "cannot stat: No such file or directory"}
