"""Query latency on a big finished job, through a real API process on loopback.

The job (1,000,000 images of 1,000 classes; 100,000 with BENCH_QUICK=1) is written by the
database itself (benchmarks.large_job). For the job view, the subpopulation list and a page of
images deep inside the biggest subpopulation:
- open loop: requests sent at a fixed 100 per second whatever the answers do, each latency
  measured from its scheduled send time (so a stall is not hidden by the client waiting for
  it: no coordinated omission); p50 and p95;
- closed loop: 8 clients back to back, in one-second turns with /healthz on the same server;
  throughput as a ratio of /healthz's over the same seconds, so the ratio says what the query
  costs beyond serving HTTP at all, and a change in the machine's load falls on both alike;
  and the CPU time that the API process and Postgres spent per request meanwhile, which a
  loaded machine stretches far less than it does latency.

The tables are vacuumed after the write, as autovacuum does within a minute or so of a bulk
write (it would otherwise run during the measurement, which then measures a transient).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psutil

from analysis_service.db import make_engine
from benchmarks.large_job import LargeJobShape, vacuumed, write_large_job

OFFERED_RATE = 100.0  # requests per second
CLOSED_LOOP_CLIENTS = 8
TURN_S = 1.0  # the closed loop's turns between a query and /healthz


async def _open_loop(
    http: httpx.AsyncClient, path: str, seconds: float
) -> tuple[list[float], Counter[str]]:
    """Latencies (s) of requests sent at OFFERED_RATE, each from its scheduled send time, and
    the requests that failed by why (an error answer's status, or the client's error, such as
    a timeout: counted, not hidden)."""
    latencies: list[float] = []
    failed: Counter[str] = Counter()
    start = time.perf_counter()

    async def one(scheduled: float) -> None:
        try:
            (await http.get(path)).raise_for_status()
        except httpx.HTTPStatusError as exc:
            failed[str(exc.response.status_code)] += 1
        except httpx.HTTPError as exc:
            failed[type(exc).__name__] += 1
        else:
            latencies.append(time.perf_counter() - scheduled)

    tasks = []
    for n in range(int(seconds * OFFERED_RATE)):
        scheduled = start + n / OFFERED_RATE
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies, failed


async def _closed_loop(http: httpx.AsyncClient, path: str, seconds: float) -> tuple[int, float]:
    """Answers that CLOSED_LOOP_CLIENTS back-to-back clients get in about `seconds`, and the
    seconds it took."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            (await http.get(path)).raise_for_status()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLOSED_LOOP_CLIENTS)))
    return done, time.perf_counter() - start


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and of its children, running or ended (Postgres
    serves each connection from a child, which ends when the connection closes)."""
    parent = psutil.Process(pid)
    own = parent.cpu_times()
    total = own.user + own.system + own.children_user + own.children_system
    for child in parent.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:  # ended just now: its time is in children_* next time
            continue
        total += times.user + times.system
    return total


@dataclass
class ClosedLoop:
    rate: float  # requests per second
    healthz: float  # /healthz's, over turns beside the query's
    api_cpu_ms: float  # per request
    db_cpu_ms: float


async def _against_healthz(
    http: httpx.AsyncClient, path: str, seconds: float, api_pid: int, db_pid: int
) -> ClosedLoop:
    """The closed loop of path in turns with /healthz's, and the CPU spent in path's turns."""
    done = healthz_done = 0
    elapsed = healthz_elapsed = api_cpu = db_cpu = 0.0
    for _ in range(max(1, round(seconds / TURN_S))):
        n, t = await _closed_loop(http, "/healthz", TURN_S)
        healthz_done, healthz_elapsed = healthz_done + n, healthz_elapsed + t
        api_before, db_before = _cpu_seconds(api_pid), _cpu_seconds(db_pid)
        n, t = await _closed_loop(http, path, TURN_S)
        api_cpu += _cpu_seconds(api_pid) - api_before
        db_cpu += _cpu_seconds(db_pid) - db_before
        done, elapsed = done + n, elapsed + t
    per_request_ms = 1000 / max(done, 1)
    return ClosedLoop(
        done / elapsed,
        healthz_done / healthz_elapsed,
        api_cpu * per_request_ms,
        db_cpu * per_request_ms,
    )


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


async def _measure(
    base: str, job_id: str, seconds: float, api_pid: int, db_pid: int
) -> list[tuple[str, str]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        paths = await _paths(http, job_id)
        for path in ("/healthz", *paths.values()):  # warm the caches and the connection pool
            await _closed_loop(http, path, 0.5)
        rows = []
        for label, path in paths.items():
            latencies, failed = await _open_loop(http, path, seconds)
            q = statistics.quantiles(latencies, n=100)
            loop = await _against_healthz(http, path, seconds, api_pid, db_pid)
            why = ", ".join(f"{n} {reason}" for reason, n in failed.most_common())
            errors = f" (failed: {why})" if failed else ""
            rows.append(
                (
                    f"{label}, {OFFERED_RATE:.0f} req/s offered",
                    f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms{errors}; closed loop "
                    f"{loop.rate:,.0f} req/s = {loop.rate / loop.healthz:.2f} x /healthz "
                    f"({loop.healthz:,.0f}); CPU per request: API {loop.api_cpu_ms:.1f} ms, "
                    f"Postgres {loop.db_cpu_ms:.1f} ms",
                )
            )
    return rows


async def _write(url: str, shape: LargeJobShape) -> str:
    engine = make_engine(url)
    async with engine.begin() as conn:
        job_id = await write_large_job(conn, shape)
    await asyncio.to_thread(vacuumed, url)
    await engine.dispose()
    return str(job_id)


def run(url: str, quick: bool, serve: Callable, db_pid: int) -> list[tuple[str, str]]:
    """serve(url) is a context manager running the API on that database: (its base URL, its
    process id); db_pid: the Postgres server's process."""
    images = int(os.environ.get("BENCH_QUERY_IMAGES", "100000" if quick else "1000000"))
    shape = LargeJobShape(images=images, classes=max(1, images // 1000))
    start = time.perf_counter()
    job_id = asyncio.run(_write(url, shape))
    written = time.perf_counter() - start
    rows = [(f"{images:,}-image job written and vacuumed by the database", f"{written:.0f} s")]
    with serve(url) as (base, api_pid):
        rows += asyncio.run(_measure(base, job_id, 5.0 if quick else 10.0, api_pid, db_pid))
    return rows
