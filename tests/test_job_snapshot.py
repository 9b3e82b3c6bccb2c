"""A finished job's results never change: every answer of job A is byte-identical after job B
ran on the same folder changed (or on a changed captions file), and job B sees the change."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from analysis_service.models import JobImage
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, answers, run, submit


async def captions_by_path(api, job_id: str) -> dict[str, str]:
    """Each assigned image's caption and class, as the job shows them."""
    found = {}
    for sub in (await api.get(f"/v1/jobs/{job_id}/subpopulations")).json()["items"]:
        page = (await api.get(f"/v1/subpopulations/{sub['id']}/images?limit=1000")).json()
        found |= {item["path"]: f"{item['class']}: {item['caption']}" for item in page["items"]}
    return found


async def assigned(api, job_id: str) -> set[str]:
    rows = (await api.get(f"/v1/jobs/{job_id}/assignments?limit=10000")).json()["items"]
    return {row["image"] for row in rows}


async def invalid(api, job_id: str) -> set[str]:
    items = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    return {item["path"] for item in items}


def _touch_later(path: Path) -> None:
    """A new mtime for certain, whatever the clock's resolution."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


async def test_a_later_job_on_the_changed_folder_changes_nothing_of_an_earlier_one(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    root = make_dataset(data_root / "pets", per_class=6)
    (root / "cat" / "notes.jpg").write_bytes(b"not an image")
    job_a = await submit(api, "pets")
    transport = CountingTransport(caption_app)
    assert await run(job_a, analysis_settings, sessionmaker, transport) == "succeeded"
    before = await answers(api, job_a)
    captions_a = await captions_by_path(api, job_a)

    # Change the folder: new bytes, a move to another class, a deletion, an addition, a valid
    # image made invalid and an invalid one made valid.
    write_image(root / "cat" / "00.jpg", color=(250, 10, 10), bottom=(250, 250, 0))
    _touch_later(root / "cat" / "00.jpg")
    (root / "cat" / "01.jpg").rename(root / "dog" / "from-cat.jpg")
    (root / "dog" / "02.jpg").unlink()
    write_image(root / "cat" / "new.jpg", color=(5, 5, 5), marker=4242)
    data = (root / "dog" / "03.jpg").read_bytes()
    (root / "dog" / "03.jpg").write_bytes(data[: len(data) // 3])
    write_image(root / "cat" / "notes.jpg", color=(0, 200, 200), marker=77)
    _touch_later(root / "cat" / "notes.jpg")

    job_b = await submit(api, "pets")
    assert await run(job_b, analysis_settings, sessionmaker, transport) == "succeeded"

    after = await answers(api, job_a)
    assert after.keys() == before.keys()
    for url, body in before.items():
        assert after[url] == body, url

    seen_a, seen_b = await assigned(api, job_a), await assigned(api, job_b)
    assert {"cat/01.jpg", "dog/02.jpg", "dog/03.jpg"} <= seen_a
    assert not {"cat/new.jpg", "dog/from-cat.jpg", "cat/notes.jpg"} & seen_a
    assert {"cat/new.jpg", "dog/from-cat.jpg", "cat/notes.jpg"} <= seen_b
    assert not {"cat/01.jpg", "dog/02.jpg", "dog/03.jpg"} & seen_b
    assert await invalid(api, job_a) == {"cat/notes.jpg"}
    assert await invalid(api, job_b) == {"dog/03.jpg"}
    captions_b = await captions_by_path(api, job_b)
    assert captions_b["cat/00.jpg"] != captions_a["cat/00.jpg"]
    assert captions_b["dog/04.jpg"] == captions_a["dog/04.jpg"]  # unchanged: same caption
    assert captions_b["dog/from-cat.jpg"].startswith("dog: ")
    job_view_b = (await api.get(f"/v1/jobs/{job_b}")).json()
    assert (job_view_b["images"], job_view_b["invalid"]) == (13, 1)


async def test_a_resumed_scan_keeps_the_files_it_saw_first(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, monkeypatch
):
    """A scan interrupted and run again, with a file changed in between, links each file
    once: the version it saw first."""
    from analysis_service.pipeline import scan

    root = make_dataset(data_root / "pets", per_class=6)
    settings = analysis_settings.model_copy(update={"ingest_batch_size": 4})
    job_id = await submit(api, "pets")
    real_store = scan._store
    stored = 0

    async def store_then_die(*args: object) -> None:
        nonlocal stored
        await real_store(*args)  # type: ignore[arg-type]
        stored += 1
        if stored == 2:
            write_image(root / "cat" / "00.jpg", color=(250, 10, 10))
            _touch_later(root / "cat" / "00.jpg")
            raise RuntimeError("worker killed")

    monkeypatch.setattr(scan, "_store", store_then_die)
    transport = CountingTransport(caption_app)
    assert await run(job_id, settings, sessionmaker, transport) == "failed"
    monkeypatch.setattr(scan, "_store", real_store)
    assert (await api.post(f"/v1/jobs/{job_id}/retry")).status_code == 202
    assert await run(job_id, settings, sessionmaker, transport) == "succeeded"
    async with sessionmaker() as session:
        links = await session.scalar(select(func.count()).select_from(JobImage))
    assert links == 12
    # The file changed after the scan saw it: its caption would describe other bytes than
    # the hash it is stored under, so it is that image's caption error, not assigned.
    assert set(await assigned(api, job_id)) == {
        f"{c}/{i:02d}.jpg" for c in ("cat", "dog") for i in range(6)
    } - {"cat/00.jpg"}


CAT_WORDS = ["on green grass in bright sun", "in deep white snow at night"]
DOG_WORDS = ["on a red sofa indoors", "on a sandy beach by the sea"]


def _write_captions(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("animals", "img_name", "caption"))
        writer.writerows(rows)


def _caption_rows(names: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    rows = []
    for label, words in (("cat", CAT_WORDS), ("dog", DOG_WORDS)):
        for i, name in enumerate(names[label]):
            rows.append((label, name, f"a photo of a {label} {words[i % 2]}, number {i}"))
    return rows


@pytest.mark.parametrize("with_folder", [False, True], ids=["file alone", "file and folder"])
async def test_a_reimported_captions_file_changes_nothing_of_an_earlier_job(
    api, analysis_settings, sessionmaker, data_root: Path, with_folder: bool
):
    names = {c: [f"{c}/{i:02d}.jpg" for i in range(6)] for c in ("cat", "dog")}
    if with_folder:
        make_dataset(data_root / "pets", per_class=6)
    caps = data_root / "caps.csv"
    rows = _caption_rows(names)
    _write_captions(caps, rows)
    body = {"captions_path": "caps.csv"} | ({"dataset_path": "pets"} if with_folder else {})

    async def job() -> str:
        resp = await api.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        assert await run(job_id, analysis_settings, sessionmaker, None) == "succeeded"
        return job_id

    job_a = await job()
    before = await answers(api, job_a)
    captions_a = await captions_by_path(api, job_a)

    # Another caption for one image, (alone) another label for a second, a row dropped.
    changed = list(rows)
    changed[0] = ("cat", "cat/00.jpg", "a photo of a cat asleep in a cardboard box")
    if not with_folder:
        changed[1] = ("dog", "cat/01.jpg", changed[1][2])
    del changed[2]
    _write_captions(caps, changed)
    job_b = await job()

    after = await answers(api, job_a)
    for url, body_before in before.items():
        assert after[url] == body_before, url
    captions_b = await captions_by_path(api, job_b)
    assert captions_a["cat/00.jpg"].endswith("number 0")
    assert captions_b["cat/00.jpg"] == "cat: a photo of a cat asleep in a cardboard box"
    assert "cat/02.jpg" in captions_a and "cat/02.jpg" not in captions_b
    if not with_folder:
        assert captions_a["cat/01.jpg"].startswith("cat: ")
        assert captions_b["cat/01.jpg"].startswith("dog: ")
