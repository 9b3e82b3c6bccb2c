"""Thumbnails: throughput per core, and the time to a first grid on a large job.

Per core: one thread making 256-px thumbnails of photo-like JPEGs of 640x480 and 2000x1500, as
the API does on a cold cache (the checked open, the hash, a JPEG draft decode, orientation,
shrinking, encoding); then through the API itself, as thumbnails per second of the API
process's CPU time, cold (an empty cache) and warm.

Time to first grid: a finished job of BENCH_THUMB_IMAGES images (default 100,000; 10,000 with
BENCH_QUICK=1) written straight into the database (benchmarks.synthetic_job), whose biggest
subpopulation's first page of 60 images gets real files (the other images need none); the time
from asking for that page to having all 60 thumbnails, 6 requests at a time as a browser does,
with the API served by uvicorn in its own process. The image files themselves are in the page
cache: a cold thumbnail cache, not a cold disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image as PILImage
from sqlalchemy import select, update

from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.models import Dataset, Image, Job
from analysis_service.thumbnails.render import ScannedFile, render
from benchmarks.captioning import photo
from benchmarks.synthetic_job import SyntheticImage, insert_job
from shared.settings import ServiceSettings

GRID = 60
BROWSER_CONNECTIONS = 6
THUMBNAIL = 256
CLASSES = ["cat", "dog", "bird", "car"]
# Skewed, so that one subpopulation is large: the worst case for a grid query.
BACKGROUNDS = ["indoors", "grass", "snow", "beach"]
WEIGHTS = [0.7, 0.1, 0.1, 0.1]
# Page 1 of the biggest subpopulation gets photos of the first size, page 2 of the second.
PHOTOS = [(640, 480), (2000, 1500)]
COLD_RUNS, WARM_RUNS = 3, 5


def _images(count: int) -> list[SyntheticImage]:
    rng = np.random.default_rng(0)
    backgrounds = rng.choice(BACKGROUNDS, size=count, p=WEIGHTS)
    return [
        SyntheticImage(
            f"{CLASSES[i % len(CLASSES)]}/{i:07d}.jpg",
            CLASSES[i % len(CLASSES)],
            {"background": str(backgrounds[i])},
            caption=f"a synthetic image {i}",
        )
        for i in range(count)
    ]


async def _write_job(url: str, count: int) -> tuple[uuid.UUID, float]:
    engine = make_engine(url)
    start = time.perf_counter()
    async with make_sessionmaker(engine)() as session, session.begin():
        job_id = await insert_job(session, _images(count))
    await engine.dispose()
    return job_id, time.perf_counter() - start


def _photos(rng: np.random.Generator) -> list[PILImage.Image]:
    """One photo-like picture per size; each image gets a copy with its own corner mark, so
    that every file has other bytes (its own hash, its own thumbnail)."""
    return [photo(width, height, rng) for width, height in PHOTOS]


async def _give_files(url: str, job_id: uuid.UUID, root: Path, pages: list[list[dict]]) -> None:
    """Real photos for the images of the pages (page i: PHOTOS[i]), recorded as a scan would."""
    bases = _photos(np.random.default_rng(1))
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session, session.begin():
        dataset_id = await session.scalar(select(Job.dataset_id).where(Job.id == job_id))
        await session.execute(
            update(Dataset).where(Dataset.id == dataset_id).values(root_path=str(root))
        )
        for base, page in zip(bases, pages, strict=True):
            for n, item in enumerate(page):
                path = root / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                marked = base.copy()
                marked.paste((n * 4 % 256, 255 - n * 4 % 256, 128), (0, 0, 24, 24))
                marked.save(path, quality=90)
                st = path.stat()
                await session.execute(
                    update(Image)
                    .where(Image.id == item["image_id"])
                    .values(
                        size_bytes=st.st_size,
                        mtime_ns=st.st_mtime_ns,
                        content_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
                        format="JPEG",
                        width=base.width,
                        height=base.height,
                    )
                )
    await engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _api(url: str, data: Path, state: Path) -> Iterator[tuple[str, int]]:
    """The analysis API under uvicorn on a free port: (base URL, its process id)."""
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=url, DATA_ROOTS=str(data), STATE_DIR=str(state))
    env["LOG_LEVEL"] = "WARNING"
    args = [sys.executable, "-m", "uvicorn", "--factory", "--no-access-log", "--log-level"]
    args += ["warning", "--port", str(port), "analysis_service.app:create_app"]
    with open(state / "api.log", "ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def _page(http: httpx.AsyncClient, sub_id: int, offset: int) -> list[dict]:
    resp = await http.get(
        f"/v1/subpopulations/{sub_id}/images", params={"limit": GRID, "offset": offset}
    )
    resp.raise_for_status()
    return resp.json()["items"]


async def _grid(http: httpx.AsyncClient, sub_id: int, offset: int) -> float:
    """Seconds from asking for a page of the subpopulation to having all its thumbnails."""
    start = time.perf_counter()
    page = await _page(http, sub_id, offset)

    async def thumbnail(image_id: int) -> None:
        resp = await http.get(f"/v1/images/{image_id}/thumbnail", params={"size": THUMBNAIL})
        resp.raise_for_status()

    # The client holds BROWSER_CONNECTIONS connections, so at most that many run at once.
    await asyncio.gather(*(thumbnail(item["image_id"]) for item in page))
    return time.perf_counter() - start


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _grids(base: str, pid: int, cache: Path, sub_id: int) -> list[tuple[str, str]]:
    rows = []
    limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        (await http.get("/v1/jobs")).raise_for_status()  # connections and pool warmed
        page_s = []
        for _ in range(WARM_RUNS):
            start = time.perf_counter()
            await _page(http, sub_id, 0)
            page_s.append(time.perf_counter() - start)
        median_ms = statistics.median(page_s) * 1000
        rows.append((f"page of {GRID} of the biggest subpopulation", f"{median_ms:.0f} ms"))
        for page, (width, height) in enumerate(PHOTOS):
            seconds: dict[str, list[float]] = {"cold": [], "warm": []}
            cpu: dict[str, float] = {"cold": 0.0, "warm": 0.0}
            for run in ["cold"] * COLD_RUNS + ["warm"] * WARM_RUNS:
                if run == "cold":
                    shutil.rmtree(cache, ignore_errors=True)
                before = _cpu_s(pid)
                seconds[run].append(await _grid(http, sub_id, page * GRID))
                cpu[run] += _cpu_s(pid) - before
            for run, runs in (("cold", COLD_RUNS), ("warm", WARM_RUNS)):
                median = statistics.median(seconds[run])
                per_cpu_s = GRID * runs / cpu[run]
                rows.append(
                    (
                        f"first grid of {GRID}, {width}x{height} photos, {run} cache",
                        f"{median * 1000:.0f} ms ({per_cpu_s:,.0f} thumbnails per API CPU-s)",
                    )
                )
    return rows


def _per_core(root: Path, pages: list[list[dict]]) -> list[tuple[str, str]]:
    """Thumbnails made one after another in this thread, as a cold request makes them; the
    rate per CPU-second of this thread (the machine may be shared) and per wall second."""
    settings = ServiceSettings(data_roots=str(root))
    rows = []
    for (width, height), page in zip(PHOTOS, pages, strict=True):
        files = []
        for item in page:
            path = root / item["path"]
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files.append(ScannedFile(path, item["path"], st.st_size, st.st_mtime_ns, digest))
        cpu, wall = time.thread_time(), time.perf_counter()
        for file in files:
            render(file, settings.data_root_paths, settings.image_limits, THUMBNAIL)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        label = f"thumbnails per core, {width}x{height} JPEG -> {THUMBNAIL} px"
        rows.append((label, f"{len(files) / cpu:,.0f}/CPU-s ({len(files) / wall:,.0f}/s wall)"))
    return rows


async def _run(url: str, state: Path, count: int) -> list[tuple[str, str]]:
    job_id, build_s = await _write_job(url, count)
    rows = [(f"synthetic job written, {count} images", f"{build_s:.1f} s")]
    data, api_state = state / "thumbs-data", state / "thumbs-state"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    api_state.mkdir(parents=True, exist_ok=True)
    with _api(url, data, api_state) as (base, pid):
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            listing = f"/v1/jobs/{job_id}/subpopulations"
            subs = (await http.get(listing, params={"limit": 10_000})).json()["items"]
            biggest = max(subs, key=lambda s: s["size"])
            pages = [await _page(http, biggest["id"], n * GRID) for n in range(len(PHOTOS))]
        await _give_files(url, job_id, data, pages)
        rows.append((f"biggest subpopulation of {count}", f"{biggest['size']:,} images"))
        rows += _per_core(data, pages)
        rows += await _grids(base, pid, api_state / "thumbnails", biggest["id"])
    return rows


def run(url: str, state: Path, quick: bool) -> list[tuple[str, str]]:
    count = int(os.environ.get("BENCH_THUMB_IMAGES", "10000" if quick else "100000"))
    return asyncio.run(_run(url, state, count))
