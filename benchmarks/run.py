"""Runs every benchmark in one go and prints one table.

Real processes on loopback: embedded Postgres, the caption service (pixel engine), the analysis
API and a fresh worker per dataset. Sizes: BENCH_SIZES (default 10000,40000). BENCH_ONLY: a
comma-separated choice of
- caption, jobs: the caption path, and jobs end to end (ending with a re-scan of the largest
  dataset);
- rescan: the scan stage alone on the largest dataset, then three re-scans of it unchanged
  (benchmarks/ingest.py): the re-scan speed-up without a whole job's captioning;
- discovery: the LLM cost of discovery on real captions;
- stopping: what early stopping of discovery's round loops saves, and the LLM estimate
  against what jobs spent (benchmarks/discovery_stopping.py);
- slices: a slice request and a Parquet export on a 100,000-image job written straight into
  the database (benchmarks/slices.py);
- queries: latency and throughput of the job view, the subpopulation list and an image page
  of a 1,000,000-image job (benchmarks/queries.py);
- fanout: a job of 20,000 images, and one of 300 classes of 50 captions, each run by one
  worker process, then by two (its shards shared), each on a fresh database: wall times and
  the ratio (benchmarks/fanout.py);
- offline: the offline reasoner's speed on synthetic captions;
- thumbnails: per core, and the time to a first grid of 60 on a 100,000-image job
  (benchmarks/thumbnails.py);
- scale1m: POST latency and the worker's peak memory scanning 1,000,000 tiny files
  (benchmarks/ingest.py; not in the default set, since making the files takes about 15
  minutes the first time).
BENCH_QUICK=1 (`make bench-quick`): 3000 images (4,000 and 100 classes for fanout, 10,000
for slices and thumbnails, 100,000 for queries), no discovery cost or stopping, for
before/after comparisons within minutes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from analysis_service.database_admin import scratch_database
from analysis_service.embedded_db import embedded_server
from analysis_service.jobs.lifecycle import TERMINAL, JobStatus
from analysis_service.migrate import upgrade
from benchmarks import (
    captioning,
    discovery_cost,
    discovery_stopping,
    fanout,
    ingest,
    offline_speed,
    queries,
    slices,
    thumbnails,
)
from benchmarks.datasets import ensure_dataset
from benchmarks.progress import stage_seconds

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state" / "bench"
# Smaller sizes for before/after comparisons within minutes (`make bench-quick`).
QUICK = os.environ.get("BENCH_QUICK") == "1"
UVICORN = [
    *(sys.executable, "-m", "uvicorn", "--factory", "--no-access-log"),
    *("--log-level", "warning"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
    with open(STATE / log, "ab") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[94] * 1000


async def _latency(base: str, path: str, clients: int = 16, per_client: int = 60) -> tuple:
    samples: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for _ in range(per_client):
                start = time.perf_counter()
                (await http.get(path)).raise_for_status()
                samples.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    return (*_percentiles(samples), len(samples) / wall)


def _run_job(base: str, dataset: Path, env: dict[str, str]) -> dict:
    worker = _spawn([sys.executable, "-m", "analysis_service.worker"], env, "worker.log")
    try:
        job_id = httpx.post(base + "/v1/jobs", json={"dataset_path": str(dataset)}).json()["id"]
        while (job := httpx.get(f"{base}/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
            time.sleep(0.5)
        job["worker_peak_memory"] = ingest.peak_memory(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    if job["status"] != JobStatus.SUCCEEDED:
        raise RuntimeError(f"benchmark job {job['status']}: {job.get('error')}")
    return job


def _parts() -> set[str]:
    """BENCH_ONLY: a comma-separated choice of caption, jobs, fanout, rescan, discovery, stopping,
    slices, queries, offline, thumbnails (default: all; with BENCH_QUICK=1, all but discovery
    and stopping: their costs are counts that do not vary)."""
    default = "caption,jobs,fanout,slices,queries,offline,thumbnails"
    if not QUICK:
        default += ",discovery,stopping"
    return {p.strip() for p in os.environ.get("BENCH_ONLY", default).split(",") if p.strip()}


def main() -> None:
    parts = _parts()
    STATE.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    if "caption" in parts:
        print("caption path benchmarks ...", flush=True)
        rows += captioning.run(STATE, _port)
    if "jobs" in parts:
        rows += jobs_benchmarks()
    if "fanout" in parts:
        print("one job by one worker process, then by two ...", flush=True)
        rows += fanout.run(_bench_database, _services, _start_worker, STATE / "data", QUICK)
    if "rescan" in parts:
        rows += rescan_benchmarks()
    if "scale1m" in parts:
        rows += scale_benchmarks()
    if "slices" in parts:
        print("slices and exports on a large finished job ...", flush=True)
        with _bench_database() as url:
            rows += slices.run(url, QUICK)
    if "queries" in parts:
        print("query latency on a big finished job ...", flush=True)
        with _bench_database() as url:
            rows += queries.run(url, QUICK, _api, embedded_server(STATE / "db").get_pid())
    if "discovery" in parts:
        print("discovery cost on real captions ...", flush=True)
        server = embedded_server(STATE / "db")
        rows += discovery_cost.run(server.get_uri("postgres"), f"bench_cost_{int(time.time())}")
    if "stopping" in parts:
        print("early stopping of discovery's round loops, and the LLM estimate ...", flush=True)
        server = embedded_server(STATE / "db")
        admin = server.get_uri("postgres")
        rows += discovery_stopping.run(admin, f"bench_stop_{int(time.time())}", STATE)
    if "offline" in parts:
        print("offline reasoner speed on synthetic captions ...", flush=True)
        rows += offline_speed.run()
    if "thumbnails" in parts:
        print("thumbnails, and the first grid on a large job ...", flush=True)
        with _bench_database() as url:
            rows += thumbnails.run(url, STATE, QUICK)
    width = max(len(label) for label, _ in rows)
    print(f"\nbenchmarks (cpu cores: {os.cpu_count()}{', quick mode' if QUICK else ''})")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


@contextmanager
def _bench_database() -> Iterator[str]:
    """A fresh migrated database on the embedded server, dropped afterwards."""
    server = embedded_server(STATE / "db")
    with scratch_database(server.get_uri("postgres"), f"bench_{int(time.time())}") as url:
        upgrade(url)
        yield url


@contextmanager
def _api(url: str) -> Iterator[tuple[str, int]]:
    """The analysis API alone on a free port, as `make serve` runs it: (its base URL, its
    process id)."""
    port = _port()
    env = dict(os.environ, DATABASE_URL=url, LOG_LEVEL="WARNING")
    api = _spawn([*UVICORN, "--port", str(port), "analysis_service.app:create_app"], env, "api.log")
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}", api.pid
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)


@contextmanager
def _services(url: str, data: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The caption service and the analysis API on free ports: (API base URL, environment
    for workers)."""
    cport, aport = _port(), _port()
    env = dict(
        os.environ,
        DATABASE_URL=url,
        DATA_ROOTS=str(data),
        LOG_LEVEL="WARNING",
        CAPTION_URLS=f"http://127.0.0.1:{cport}",
    )
    caption = _spawn(
        [*UVICORN, "--port", str(cport), "caption_service.app:create_app"], env, "caption.log"
    )
    api = _spawn(
        [*UVICORN, "--port", str(aport), "analysis_service.app:create_app"], env, "api.log"
    )
    try:
        _wait_ready(f"http://127.0.0.1:{cport}/readyz")
        _wait_ready(f"http://127.0.0.1:{aport}/readyz")
        yield f"http://127.0.0.1:{aport}", env
    finally:
        for proc in (caption, api):
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _job_rows(size: int, job: dict) -> list[tuple[str, str]]:
    scan_s = stage_seconds(job["progress"]["scan"])
    cap_s = stage_seconds(job["progress"]["caption"])
    per_s = job["valid"] / job["duration_s"]
    return [
        (f"ingest throughput, {size} files", f"{size / scan_s:,.0f} files/s"),
        (f"caption stage, {size} images (pixel)", f"{job['valid'] / cap_s:,.0f} images/s"),
        (
            f"end-to-end job, {size} images (pixel)",
            f"{per_s:,.0f} images/s ({job['duration_s']:.1f} s)",
        ),
        (f"worker peak memory, {size} images", str(job["worker_peak_memory"])),
    ]


def _latency_rows(base: str, job: dict) -> list[tuple[str, str]]:
    rows = []
    for label, path in (
        ("job polling", f"/v1/jobs/{job['id']}"),
        ("subpopulation query", f"/v1/jobs/{job['id']}/subpopulations"),
    ):
        p50, p95, rps = asyncio.run(_latency(base, path))
        rows.append(
            (
                f"{label} latency, 16 clients",
                f"p50 {p50:.1f} ms, p95 {p95:.1f} ms ({rps:,.0f} req/s)",
            )
        )
    return rows


def _start_worker(env: dict[str, str]) -> subprocess.Popen:
    return _spawn([sys.executable, "-m", "analysis_service.worker"], env, "worker.log")


def _worker(env: dict[str, str]) -> Callable[[], subprocess.Popen]:
    return lambda: _start_worker(env)


def _sizes() -> list[int]:
    default_sizes = "3000" if QUICK else "10000,40000"
    return [int(s) for s in os.environ.get("BENCH_SIZES", default_sizes).split(",")]


def jobs_benchmarks() -> list[tuple[str, str]]:
    sizes = _sizes()
    data = STATE / "data"
    rows: list[tuple[str, str]] = []
    with _bench_database() as url, _services(url, data) as (base, env):
        job: dict = {}
        for size in sizes:
            print(f"preparing {size} images ...", flush=True)
            dataset = ensure_dataset(data / f"synthetic-{size}", size)
            print(f"running a job on {size} images ...", flush=True)
            job = _run_job(base, dataset, env)
            rows += _job_rows(size, job)
        print(f"re-scanning the unchanged {size} images ...", flush=True)
        first = size / stage_seconds(job["progress"]["scan"])
        rows += ingest.rescan_rows(base, dataset, first, _worker(env), url)
        rows += _latency_rows(base, job)
    return rows


def rescan_benchmarks() -> list[tuple[str, str]]:
    size = max(_sizes())
    data = STATE / "data"
    print(f"preparing {size} images ...", flush=True)
    dataset = ensure_dataset(data / f"synthetic-{size}", size)
    with _bench_database() as url, _services(url, data) as (base, env):
        print(f"scanning {size} images, then re-scanning them unchanged ...", flush=True)
        return ingest.first_and_rescans(base, dataset, _worker(env), url)


def scale_benchmarks() -> list[tuple[str, str]]:
    data = ingest.scale_dir()
    print(f"preparing {ingest.SCALE_FILES:,} tiny files under {data} ...", flush=True)
    start = time.monotonic()
    dataset = ingest.ensure_scale_dataset(data / f"tiny-{ingest.SCALE_FILES}", ingest.SCALE_FILES)
    print(f"ready in {time.monotonic() - start:.0f} s; scanning them ...", flush=True)
    with _bench_database() as url, _services(url, data) as (base, env):
        return ingest.scale_rows(base, dataset, _worker(env))


if __name__ == "__main__":
    main()
