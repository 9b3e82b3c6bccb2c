"""Query latency on a big finished job, through a real API process on loopback.

The job (1,000,000 images of 1,000 classes; 100,000 with BENCH_QUICK=1) is written by the
database itself (benchmarks.large_job). For the job view, the subpopulation list and a page of
images deep inside the biggest subpopulation:
- open loop: requests sent at a fixed 100 per second whatever the answers do, each latency
  measured from its scheduled send time (so a stall is not hidden by the client waiting for
  it: no coordinated omission); p50 and p95;
- closed loop: 8 clients back to back; throughput as a ratio of /healthz's on the same server
  in the same run, so the ratio says what the query costs beyond serving HTTP at all.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable

import httpx
from sqlalchemy import text

from analysis_service.db import make_engine
from benchmarks.large_job import ANALYZED, LargeJobShape, write_large_job

OFFERED_RATE = 100.0  # requests per second
CLOSED_LOOP_CLIENTS = 8


async def _open_loop(http: httpx.AsyncClient, path: str, seconds: float) -> tuple[list[float], int]:
    """Latencies (s) of requests sent at OFFERED_RATE, each from its scheduled send time, and
    how many failed (an error answer or a dropped connection: counted, not hidden)."""
    latencies: list[float] = []
    failed = 0
    start = time.perf_counter()

    async def one(scheduled: float) -> None:
        nonlocal failed
        try:
            (await http.get(path)).raise_for_status()
        except httpx.HTTPError:
            failed += 1
        else:
            latencies.append(time.perf_counter() - scheduled)

    tasks = []
    for n in range(int(seconds * OFFERED_RATE)):
        scheduled = start + n / OFFERED_RATE
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies, failed


async def _closed_loop(http: httpx.AsyncClient, path: str, seconds: float) -> float:
    """Requests per second that CLOSED_LOOP_CLIENTS back-to-back clients get."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            (await http.get(path)).raise_for_status()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLOSED_LOOP_CLIENTS)))
    return done / (time.perf_counter() - start)


def _items(answer: dict | list) -> list[dict]:
    return answer["items"] if isinstance(answer, dict) else answer  # a page, or a bare list


async def _paths(http: httpx.AsyncClient, job_id: str) -> dict[str, str]:
    """The queries: the job view, the first page of subpopulations, and a page of the biggest
    subpopulation's images half way in, by offset and (where the API has cursors) by the
    cursor a scrolling client holds there."""
    subpopulations = f"/v1/jobs/{job_id}/subpopulations"
    listing = _items((await http.get(subpopulations, params={"limit": 10000})).json())
    biggest = max(listing, key=lambda s: s["size"])
    images = f"/v1/subpopulations/{biggest['id']}/images"
    half = biggest["size"] // 2
    paths = {
        "job view": f"/v1/jobs/{job_id}",
        "subpopulation list": subpopulations,
        f"image page at offset {half:,}": f"{images}?limit=100&offset={half}",
    }
    before = (await http.get(images, params={"limit": 1, "offset": half - 1})).json()
    if "next" in before:  # keyset pages: the cursor of the page that ends just before half way
        paths[f"image page at cursor {half:,}"] = f"{images}?limit=100&after={before['next']}"
    return paths


async def _measure(base: str, job_id: str, seconds: float) -> list[tuple[str, str]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        paths = await _paths(http, job_id)
        for path in paths.values():  # warm the server's caches and the connection pool
            await _closed_loop(http, path, 0.5)
        rows = []
        healthz = await _closed_loop(http, "/healthz", seconds)
        for label, path in paths.items():
            latencies, failed = await _open_loop(http, path, seconds)
            q = statistics.quantiles(latencies, n=100)
            rate = await _closed_loop(http, path, seconds)
            errors = f" ({failed} failed)" if failed else ""
            rows.append(
                (
                    f"{label}, {OFFERED_RATE:.0f} req/s offered",
                    f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms{errors}; closed loop "
                    f"{rate:,.0f} req/s = {rate / healthz:.2f} x /healthz ({healthz:,.0f})",
                )
            )
    return rows


async def _write(url: str, shape: LargeJobShape) -> str:
    engine = make_engine(url)
    async with engine.begin() as conn:
        job_id = await write_large_job(conn, shape)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ANALYZED:
            await conn.execute(text(f"ANALYZE {table}"))
    await engine.dispose()
    return str(job_id)


def run(url: str, quick: bool, serve: Callable) -> list[tuple[str, str]]:
    """serve(url) is a context manager running the API on that database: its base URL."""
    images = int(os.environ.get("BENCH_QUERY_IMAGES", "100000" if quick else "1000000"))
    shape = LargeJobShape(images=images, classes=max(1, images // 1000))
    start = time.perf_counter()
    job_id = asyncio.run(_write(url, shape))
    written = time.perf_counter() - start
    rows = [(f"big job written by the database, {images:,} images", f"{written:.0f} s")]
    with serve(url) as base:
        rows += asyncio.run(_measure(base, job_id, 5.0 if quick else 10.0))
    return rows
