"""POST /v1/jobs checks its inputs cheaply and off the event loop: it never reads a whole
captions file nor walks a dataset folder; the job counts and checks them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis_service.datasets import layout
from analysis_service.datasets.captions_file import (
    HEAD_BYTES,
    MAX_LINE_BYTES,
    CaptionsFileError,
    check_file,
)
from analysis_service.jobs import service
from tests.builders import make_dataset
from tests.pipeline_helpers import run

ROWS = 200_000


def big_captions(path: Path, rows: int = ROWS) -> Path:
    """rows good rows, then one without a caption that only a reader of the whole file finds."""
    with path.open("w", encoding="utf-8") as f:
        f.write("animals,img_name,caption\n")
        f.writelines(
            f"dog,{i}.jpg,A dog on the grass in the park, number {i}.\n" for i in range(rows)
        )
        f.write("dog,last.jpg,\n")
    return path


@pytest.fixture
def head_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How far into the captions file each submission read."""
    positions: list[int] = []
    real = service.check_head

    def check_head(f: Any, name: str) -> None:
        real(f, name)
        positions.append(f.tell())

    monkeypatch.setattr(service, "check_head", check_head)
    return positions


async def test_a_large_captions_file_is_accepted_unread_and_checked_by_the_job(
    api, analysis_settings, sessionmaker, data_root: Path, head_reads: list[int]
):
    path = big_captions(data_root / "big.csv")
    resp = await api.post("/v1/jobs", json={"captions_path": "big.csv"})
    assert resp.status_code == 202, resp.text
    assert head_reads == [HEAD_BYTES] and HEAD_BYTES * 100 < path.stat().st_size
    job_id = resp.json()["id"]
    assert await run(job_id, analysis_settings, sessionmaker, None) == "failed"
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert f"rows {ROWS + 1}: no caption" in job["error"]


def _listed_entries(monkeypatch: pytest.MonkeyPatch, below: Path) -> list[str]:
    """The directory entries below a folder that os.scandir has handed out, as they are read:
    what a walk looked at."""
    seen: list[str] = []
    real = os.scandir

    class Counting:
        def __init__(self, path: Any) -> None:
            self._it, self._inside = real(path), Path(path).is_relative_to(below)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self._it.close()

        def __iter__(self) -> Iterator[os.DirEntry[str]]:
            for entry in self._it:
                if self._inside:
                    seen.append(os.path.relpath(entry.path, below))
                yield entry

    monkeypatch.setattr(layout.os, "scandir", Counting)
    return seen


async def test_a_dataset_with_a_captions_file_is_not_walked_by_the_request(
    api, data_root: Path, head_reads: list[int], monkeypatch: pytest.MonkeyPatch
):
    root = make_dataset(data_root / "pets", per_class=2)
    for i in range(300):
        (root / "dog" / f"notes-{i:03}.txt").write_text("not an image")
    big_captions(data_root / "big.csv")
    walked = _listed_entries(monkeypatch, root)
    resp = await api.post("/v1/jobs", json={"dataset_path": "pets", "captions_path": "big.csv"})
    assert resp.status_code == 202, resp.text
    # The class folders, then the first entry of the first one: an image is enough.
    assert sorted(walked[:2]) == ["cat", "dog"] and len(walked) == 3
    assert walked[2].startswith("cat/") and walked[2].endswith(".jpg")
    assert head_reads == [HEAD_BYTES]


async def test_a_class_folder_is_read_only_up_to_its_first_image(
    api, data_root: Path, monkeypatch: pytest.MonkeyPatch
):
    """A flat folder of many files is not listed in full (nor sorted) by a submission."""
    root = data_root / "flat"
    (root / "cat").mkdir(parents=True)
    for i in range(500):
        (root / "cat" / f"{i:04}.jpg").write_bytes(b"x")
    walked = _listed_entries(monkeypatch, root)
    resp = await api.post("/v1/jobs", json={"dataset_path": "flat"})
    assert resp.status_code == 202, resp.text
    assert len(walked) == 2  # the class folder and one of its files


def _off_the_loop(calls: list[tuple[str, bool]], fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, noting whether each call ran on a thread with a running event loop."""

    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            calls.append((fn.__name__, True))
        except RuntimeError:
            calls.append((fn.__name__, False))
        return fn(*args, **kwargs)

    return watched


async def test_the_request_touches_the_disk_only_in_threads(
    api, data_root: Path, monkeypatch: pytest.MonkeyPatch
):
    make_dataset(data_root / "pets", per_class=2)
    (data_root / "caps.csv").write_text("animals,img_name,caption\ndog,dog/00.jpg,A dog.\n")
    calls: list[tuple[str, bool]] = []
    names = [
        "resolve_folder_inside_roots",
        "check_layout",
        "resolve_file_inside_roots",
        "open_captions_file",
        "check_head",
    ]
    for name in names:
        monkeypatch.setattr(service, name, _off_the_loop(calls, getattr(service, name)))
    resp = await api.post("/v1/jobs", json={"dataset_path": "pets", "captions_path": "caps.csv"})
    assert resp.status_code == 202, resp.text
    assert calls == [(name, False) for name in names]


async def test_the_scan_walks_and_stats_the_folder_off_the_event_loop(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, monkeypatch
):
    from analysis_service.pipeline import scan
    from tests.pipeline_helpers import CountingTransport

    make_dataset(data_root / "pets", per_class=3)
    calls: list[tuple[str, bool]] = []
    real_walk = scan.iter_files

    def iter_files(
        root: Path, start: str | None = None, stop: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        for found in real_walk(root, start, stop):
            _off_the_loop(calls, lambda: None)()  # noted as each entry is produced
            yield found

    monkeypatch.setattr(scan, "iter_files", iter_files)
    monkeypatch.setattr(scan, "stat_all", _off_the_loop(calls, scan.stat_all))
    transport = CountingTransport(caption_app)
    for _ in range(2):  # a first scan, then a re-scan, which stats the files as it plans
        resp = await api.post("/v1/jobs", json={"dataset_path": "pets"})
        assert await run(resp.json()["id"], analysis_settings, sessionmaker, transport)
    # First the plan's walk, the shard's, and its batches' stats (a batch, then the empty one
    # that ends the walk); then the plan's walk and its batches' stats alone.
    assert len(calls) == (6 * 2 + 2) + (6 + 2)
    assert not any(on_loop for _, on_loop in calls)


def test_a_captions_file_of_one_endless_line_is_refused_without_holding_it(tmp_path: Path):
    path = tmp_path / "captions.csv"
    path.write_bytes(b"image,label,caption\na.jpg,cat," + b"x" * (MAX_LINE_BYTES + 10) + b"\n")
    with path.open("rb") as f, pytest.raises(CaptionsFileError, match="line 2 is longer"):
        check_file(f, path.name)
    path.write_bytes(b"image,label,caption\na.jpg,cat," + b"x" * 1000 + b"\n")
    with path.open("rb") as f:
        assert check_file(f, path.name).rows == 1
