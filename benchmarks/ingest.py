"""Ingest at scale: a re-scan of an unchanged folder, and a synthetic 1,000,000-file dataset
(submission latency and the worker's peak memory through the scan).

Each scan runs in a fresh worker process, given the job once it has settled (done with what
it does as it starts, as a serving worker has); the job is cancelled once its scan
stage is done, so the numbers are the scan's alone. The worker's peak memory is its VmHWM
(the kernel's high-water mark of its resident set) read when the scan has finished, and
apart that of the processes it reads files in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from analysis_service.jobs.lifecycle import TERMINAL
from benchmarks.large_job import vacuumed
from benchmarks.progress import stage_seconds

CLASSES = ("airplane", "bird", "car", "ship")
PER_FOLDER = 5000
SCALE_FILES = int(os.environ.get("BENCH_SCALE_FILES", "1000000"))


def scale_dir() -> Path:
    """Where the 1,000,000 files are made once and kept (BENCH_SCALE_DIR): outside any
    checkout, so that runs of several checkouts share them."""
    return Path(os.environ.get("BENCH_SCALE_DIR", "/tmp/subpop-bench-scale"))


def _bmp(index: int, side: int = 8) -> bytes:
    """An 8x8 24-bit BMP whose pixels encode index: unique bytes, no encoder needed."""
    row = bytes((index >> s) & 0xFF for s in (0, 8, 16)) * side + b"\0" * ((-3 * side) % 4)
    pixels = row * side
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def ensure_scale_dataset(root: Path, count: int) -> Path:
    """count tiny BMPs over four classes in folders of 5,000 (reused when complete)."""
    marker = root / f".complete-{count}"
    if marker.exists():
        return root
    for index in range(count):
        folder = root / CLASSES[index % len(CLASSES)] / f"part{index // PER_FOLDER:03d}"
        if index % PER_FOLDER < len(CLASSES):
            folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{index:07d}.bmp", "wb") as out:
            out.write(_bmp(index))
    marker.touch()
    return root


def _vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class PeakMemory:
    """Peak resident memory (VmHWM) of a worker and, apart, of the processes it started (its
    scanning processes, their fork server): these share pages with each other (counted in
    each), not with the worker."""

    worker_mib: float
    children_mib: float

    def __str__(self) -> str:
        more = f"{self.children_mib:.0f} MiB more"
        return f"{self.worker_mib:.0f} MiB (its scanning processes: {more})"


def peak_memory(pid: int) -> PeakMemory:
    children = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error, OSError):
            children += _vm_hwm_mib(child.pid)
    return PeakMemory(_vm_hwm_mib(pid), children)


def _settled(pid: int, timeout_s: float = 120.0) -> None:
    """Wait until the process has used under 2% of a core for a second: a fresh worker's
    imports and first queue round trips are not the scan's (a worker serving for a while did
    them long before)."""
    process = psutil.Process(pid)
    deadline = time.monotonic() + timeout_s
    used = sum(process.cpu_times()[:2])
    while time.monotonic() < deadline:
        time.sleep(1.0)
        before, used = used, sum(process.cpu_times()[:2])
        if used - before < 0.02:
            return
    raise RuntimeError(f"worker {pid} still busy after {timeout_s:.0f} s")


def scan_only(
    base: str, dataset: Path, spawn_worker: Callable[[], object]
) -> tuple[float, int, PeakMemory]:
    """Submit a job, let a fresh worker scan it once it has settled (see _settled), cancel
    the job once scanned: (scan seconds, files, worker peak MiB through the scan)."""
    worker = spawn_worker()
    try:
        _settled(worker.pid)  # type: ignore[attr-defined]
        job_id = httpx.post(base + "/v1/jobs", json={"dataset_path": str(dataset)}).json()["id"]
        while True:
            if (found := httpx.get(f"{base}/v1/jobs/{job_id}", timeout=30)).status_code == 404:
                continue  # not readable yet (see _visible)
            job = found.json()
            scan = job["progress"].get("scan", {})
            if scan.get("finished_at") or job["status"] in TERMINAL:
                break
            time.sleep(0.2)
        peak = peak_memory(worker.pid)  # type: ignore[attr-defined]
        httpx.post(f"{base}/v1/jobs/{job_id}/cancel", timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
        worker.wait(60)  # type: ignore[attr-defined]
    if not scan.get("finished_at"):
        raise RuntimeError(f"scan of {dataset} ended {job['status']}: {job.get('error')}")
    return stage_seconds(scan), int(scan["done"]), peak


def rescan_rows(
    base: str,
    dataset: Path,
    first_files_per_s: float,
    spawn_worker: Callable[[], object],
    url: str,
) -> list[tuple[str, str]]:
    """A second job on the unchanged folder a job has just scanned, once the database has
    vacuumed the first job's rows: its scan rate and how much faster than the first scan it
    is."""
    vacuumed(url)
    seconds, files, _ = scan_only(base, dataset, spawn_worker)
    rate = files / seconds
    return [
        (f"re-scan of the unchanged {files} files", f"{rate:,.0f} files/s ({seconds:.2f} s)"),
        ("re-scan speed-up over the first scan", f"{rate / first_files_per_s:.1f}x"),
    ]


def first_and_rescans(
    base: str, dataset: Path, spawn_worker: Callable[[], object], url: str, rescans: int = 3
) -> list[tuple[str, str]]:
    """The scan stage alone on a folder new to the database, then re-scans of it unchanged
    (the median of `rescans`), the first job's rows vacuumed before each (see vacuumed): the
    speed-up, measured within one run on one machine."""
    seconds, files, _ = scan_only(base, dataset, spawn_worker)
    again = []
    for _ in range(rescans):
        vacuumed(url)
        again.append(scan_only(base, dataset, spawn_worker)[0])
    first, rescan = files / seconds, files / statistics.median(again)
    spread = ", ".join(f"{s:.2f}" for s in again)
    return [
        (f"first scan of {files} files (scan only)", f"{first:,.0f} files/s ({seconds:.2f} s)"),
        (f"re-scan of the unchanged {files} files", f"{rescan:,.0f} files/s ({spread} s)"),
        ("re-scan speed-up over the first scan", f"{rescan / first:.1f}x (median re-scan)"),
    ]


def _visible(http: httpx.Client, job_id: str) -> None:
    """Wait until another request can read the job: what a client can rely on, whether the
    API commits before answering or (as older versions did) just after."""
    while http.get(f"/v1/jobs/{job_id}").status_code == 404:
        time.sleep(0.001)


def post_latency_ms(base: str, dataset: Path, times: int = 7) -> tuple[list[float], list[float]]:
    """POST /v1/jobs on the dataset, timed at the client: until answered, and until the job
    can be read. Each job is cancelled at once (no worker runs meanwhile: still queued)."""
    answered, visible = [], []
    with httpx.Client(base_url=base, timeout=60) as http:
        http.get("/healthz")  # the connection, opened before timing
        for _ in range(times):
            start = time.perf_counter()
            resp = http.post("/v1/jobs", json={"dataset_path": str(dataset)})
            answered.append((time.perf_counter() - start) * 1000)
            resp.raise_for_status()
            _visible(http, resp.json()["id"])
            visible.append((time.perf_counter() - start) * 1000)
            http.post(f"/v1/jobs/{resp.json()['id']}/cancel").raise_for_status()
    return answered, visible


def scale_rows(base: str, dataset: Path, spawn_worker: Callable[[], object]) -> list[tuple]:
    files = SCALE_FILES
    answered, visible = post_latency_ms(base, dataset)
    seconds, done, peak = scan_only(base, dataset, spawn_worker)
    return [
        (
            f"POST /v1/jobs on {files:,} files",
            f"median {statistics.median(answered):.1f} ms, max {max(answered):.1f} ms; "
            f"job readable after {statistics.median(visible):.1f} ms (median)",
        ),
        (f"scan of {done:,} files", f"{done / seconds:,.0f} files/s ({seconds:.0f} s)"),
        (f"worker peak memory, scan of {done:,} files", str(peak)),
    ]


if __name__ == "__main__":  # make the scale dataset ahead of time: python -m benchmarks.ingest
    start = time.perf_counter()
    ensure_scale_dataset(scale_dir() / f"tiny-{SCALE_FILES}", SCALE_FILES)
    print(f"{SCALE_FILES} files ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
