"""Big jobs run by one worker process, then by two (their shards shared between them): wall
times from submission to the end, each stage's time, and the ratio, for two jobs:

- images (BENCH_FANOUT_IMAGES, 20,000): scan, caption (pixel engine, caption service on the
  same machine) and discovery; the caption service does most of the work;
- the same number of images in classes of 50 (ImageNet-shaped): the same scan and
  captioning, and a discovery per class that the workers share;
- captions given (BENCH_FANOUT_CLASSES classes of 50 real captions, 300): the workers do
  the work (storing, the offline reasoner per class, assignments).

Each run gets a fresh database and fresh services, so the second job reuses nothing of the
first (no stored file versions, no captions of the same bytes); the dataset's files are read
once beforehand, so both runs find them in the page cache. The runs alternate (one worker,
two, one, two, ... for BENCH_FANOUT_ROUNDS rounds): a machine whose load changes meanwhile
weighs on both. BENCH_FANOUT_WORKERS ("1,2") names the counts of workers, each compared with
the first: "1,2,4" on a machine with the cores for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import psutil
import psycopg

from analysis_service.db import libpq_url
from analysis_service.jobs.lifecycle import TERMINAL, JobStatus
from benchmarks.datasets import ensure_dataset
from benchmarks.discovery_stopping import DATA as CAPTIONS
from benchmarks.discovery_stopping import write_classes
from benchmarks.progress import stage_seconds

Services = Callable[[str, Path], AbstractContextManager[tuple[str, dict[str, str]]]]
Database = Callable[[], AbstractContextManager[str]]
Spawn = Callable[[dict[str, str]], subprocess.Popen]

#: Captions per class of the captions job.
PER_CLASS = 50


def _warm(dataset: Path) -> None:
    """Read every file once, so that neither run pays for a cold page cache."""
    for folder, _, files in os.walk(dataset):
        for name in files:
            Path(folder, name).read_bytes()


def _workers_up(url: str, count: int, timeout: float = 60) -> None:
    """Wait until `count` workers have registered with the queue: their start-up (imports)
    is not the job's time."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            found = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if found is not None and found[0] >= count:
                return
            time.sleep(0.2)
    raise RuntimeError(f"{count} workers did not start")


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _settled(procs: list[subprocess.Popen], timeout: float = 60) -> None:
    """Wait until the workers are idle (done with what a worker does as it starts: its
    imports, its first queue round trips): a long-running worker has done so long before a
    job comes."""
    deadline = time.monotonic() + timeout
    before = sum(_cpu_seconds(p.pid) for p in procs)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = sum(_cpu_seconds(p.pid) for p in procs)
        if now - before < 0.05 * len(procs):
            return
        before = now


def _tree_cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of a process and of the processes it started that are still running (the
    workers' scanning processes, the pixel engine's describing processes)."""
    used = 0.0
    for part in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            used += _cpu_seconds(part.pid)
    return used


def _cpu_of(url: str, workers: list[subprocess.Popen]) -> dict[str, float]:
    """CPU seconds used so far by the workers and the caption service (a child of this
    process), each with the processes it started, and by the database's backends: with the
    wall time, whether a run left cores idle."""
    database = url.rsplit("/", 1)[1].split("?")[0]
    used = {
        "workers": sum(_tree_cpu_seconds(psutil.Process(p.pid)) for p in workers),
        "caption": 0.0,
        "postgres": 0.0,
    }
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        with contextlib.suppress(psutil.Error):
            if "caption_service.app" in line and proc.ppid() == os.getpid():
                used["caption"] += _tree_cpu_seconds(proc)
            elif line.startswith("postgres:") and f" {database} " in line:
                used["postgres"] += _cpu_seconds(proc.pid)
    return used


def _runners(url: str, job_id: str) -> int:
    """How many worker processes finished shards of the job."""
    with psycopg.connect(libpq_url(url)) as conn:
        found = conn.execute(
            "SELECT count(DISTINCT finished_by) FROM job_shard WHERE job_id = %s", (job_id,)
        ).fetchone()
    return int(found[0]) if found is not None else 0


def _one_job(
    url: str, services: Services, data: Path, body: dict[str, str], workers: int, spawn: Spawn
) -> tuple[float, dict, int]:
    """(wall seconds from submission to the end, the finished job, processes that ran shards)."""
    with services(url, data) as (base, env):
        procs = [spawn(env) for _ in range(workers)]
        try:
            _workers_up(url, workers)
            _settled(procs)
            cpu_before = _cpu_of(url, procs)
            start = time.monotonic()
            resp = httpx.post(base + "/v1/jobs", json=body, timeout=30)
            job_id = resp.json()["id"]
            while (job := httpx.get(f"{base}/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
                time.sleep(0.2)
            wall = time.monotonic() - start
            cpu = _cpu_of(url, procs)
            job["cpu_s"] = {k: cpu[k] - cpu_before.get(k, 0.0) for k in cpu}
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
    if job["status"] != JobStatus.SUCCEEDED:
        raise RuntimeError(f"benchmark job {job['status']}: {job.get('error')}")
    return wall, job, _runners(url, job_id)


def _stages(job: dict) -> str:
    progress = job["progress"]
    stages = ", ".join(
        f"{stage} {stage_seconds(progress[stage]):.1f} s"
        for stage in ("scan", "caption", "import", "discover")
        if stage in progress
    )
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in job["cpu_s"].items())
    return f"{stages}; CPU s: {cpu}"


def _compare(
    what: str,
    body: dict[str, str],
    database: Database,
    services: Services,
    spawn: Spawn,
    data: Path,
    rounds: int,
    counts: list[int],
) -> list[tuple[str, str]]:
    """The job run by each count of workers in turn (1 then 2 by default), for `rounds`
    alternated rounds; each count's median against the first count's."""
    load_before = os.getloadavg()[0]
    walls: dict[int, list[float]] = {count: [] for count in counts}
    rows: list[tuple[str, str]] = []
    for round_ in range(rounds):
        for workers in counts:
            print(f"a job of {what}, {workers} worker process(es) ...", flush=True)
            with database() as url:
                wall, job, runners = _one_job(url, services, data, body, workers, spawn)
            walls[workers].append(wall)
            rows.append(
                (
                    f"job of {what}, {workers} worker process(es), round {round_ + 1}",
                    f"{wall:.1f} s ({_stages(job)}; shards run by {runners} process(es))",
                )
            )
    base = counts[0]
    for workers in counts[1:]:
        one, many = statistics.median(walls[base]), statistics.median(walls[workers])
        faster = sum(a > b for a, b in zip(walls[base], walls[workers], strict=True))
        rows.append(
            (
                f"job of {what}, {workers} worker processes vs {base} (median of {rounds})",
                f"{one / many:.2f}x as fast ({one:.1f} s vs {many:.1f} s; {workers} faster in "
                f"{faster} of {rounds} rounds; load average {load_before:.1f} before, "
                f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores)",
            )
        )
    return rows


def _captions_file(data: Path, classes: int) -> Path | None:
    """The captions job's file, written once (whole or not at all) from the shared real
    captions; None when those are not beside the checkout."""
    target = data / f"captions-{classes}x{PER_CLASS}.csv"
    if not target.exists():
        if not CAPTIONS.is_dir():
            return None
        partial = target.with_suffix(".partial")
        write_classes(partial, classes, PER_CLASS)
        partial.replace(target)
    return target


def run(
    database: Database, services: Services, spawn: Spawn, data: Path, quick: bool
) -> list[tuple[str, str]]:
    size = int(os.environ.get("BENCH_FANOUT_IMAGES", "4000" if quick else "20000"))
    classes = int(os.environ.get("BENCH_FANOUT_CLASSES", "100" if quick else "300"))
    rounds = int(os.environ.get("BENCH_FANOUT_ROUNDS", "1"))
    counts = [int(n) for n in os.environ.get("BENCH_FANOUT_WORKERS", "1,2").split(",")]
    print(f"preparing {size} images ...", flush=True)
    dataset = ensure_dataset(data / f"synthetic-{size}", size)
    _warm(dataset)
    rows = _compare(
        f"{size} images",
        {"dataset_path": str(dataset)},
        *(database, services, spawn, data, rounds, counts),
    )
    # The same images over many classes of PER_CLASS, as ImageNet's: the discovery of its
    # classes, the workers' own work, is a share of the job that the image job above lacks.
    many = size // PER_CLASS
    print(f"preparing {size} images in {many} classes ...", flush=True)
    spread = ensure_dataset(data / f"synthetic-{size}-{many}-classes", size, classes=many)
    _warm(spread)
    rows += _compare(
        f"{size} images in {many} classes",
        {"dataset_path": str(spread)},
        *(database, services, spawn, data, rounds, counts),
    )
    what = f"{classes} classes of {PER_CLASS} captions"
    if (captions := _captions_file(data, classes)) is None:
        return [*rows, (f"job of {what}", f"not run: no real captions under {CAPTIONS}")]
    body = {"captions_path": captions.name}
    return [*rows, *_compare(what, body, database, services, spawn, data, rounds, counts)]
