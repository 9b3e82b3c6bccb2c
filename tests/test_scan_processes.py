"""The scan reads, hashes and validates files in processes of its own: a file that ends such a
process (a decoder crash, memory running out) is one invalid file, not a lost worker or job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analysis_service.pipeline import scan
from analysis_service.settings import AnalysisSettings
from shared.processes import cgroup_cpu_quota, usable_cores
from tests.builders import make_dataset
from tests.pipeline_helpers import CountingTransport, run, submit
from tests.scan_examiners import (
    HANG,
    ONCE,
    POISON,
    examine_or_die,
    examine_or_die_once,
    examine_or_hang,
)


@pytest.fixture
def job_reading_with(api, analysis_settings, sessionmaker, caption_app, data_root, monkeypatch):  # type: ignore[no-untyped-def]
    """A job on a two-class dataset with one file renamed (class folder, new stem), read in
    the scanning processes by `examine` (a function of tests.scan_examiners, which they import):
    (its view, the images sent to be captioned)."""

    async def job(examine, folder: str, stem: str, **settings) -> tuple[dict, int]:  # type: ignore[no-untyped-def]
        dataset = make_dataset(data_root / "pets", per_class=12)
        (dataset / folder / "03.jpg").rename(dataset / folder / f"{stem}.jpg")
        monkeypatch.setattr(scan, "examine_chunk", examine)
        job_id = await submit(api, "pets")
        transport = CountingTransport(caption_app)
        ran = analysis_settings.model_copy(update=settings)
        assert await run(job_id, ran, sessionmaker, transport) == "succeeded"
        return (await api.get(f"/v1/jobs/{job_id}")).json(), transport.images_sent

    return job


async def test_a_file_that_ends_its_scanning_process_is_invalid_and_the_rest_is_read(
    api, job_reading_with
):
    job, sent = await job_reading_with(examine_or_die, "cat", POISON)
    assert (job["images"], job["valid"], job["invalid"]) == (24, 23, 1)
    invalid = (await api.get(f"/v1/jobs/{job['id']}/invalid-images")).json()["items"]
    assert [(i["path"], i["reason"]) for i in invalid] == [(f"cat/{POISON}.jpg", scan.CRASHED)]
    # Every other file was read and captioned: one caption each. (Had the file been read in
    # the worker's own process, examine_or_die would have ended the test run.)
    assert sent == 23


async def test_a_process_that_ends_once_blames_no_file(job_reading_with, data_root: Path):
    job, sent = await job_reading_with(examine_or_die_once, "dog", ONCE)
    assert (data_root / "ended-alone").exists()
    assert (job["images"], job["valid"], job["invalid"], sent) == (24, 24, 0, 24)


async def test_a_file_that_never_finishes_reading_is_invalid_and_the_rest_is_read(
    api, job_reading_with
):
    job, sent = await job_reading_with(examine_or_hang, "dog", HANG, scan_chunk_timeout_s=2.0)
    assert (job["images"], job["valid"], job["invalid"], sent) == (24, 23, 1, 23)
    invalid = (await api.get(f"/v1/jobs/{job['id']}/invalid-images")).json()["items"]
    assert [(i["path"], i["reason"]) for i in invalid] == [(f"dog/{HANG}.jpg", scan._too_slow(2.0))]


def test_a_cgroup_cpu_quota_caps_the_cores(tmp_path: Path):
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_quota(tmp_path) == 3


def test_one_scanning_process_per_core_the_worker_may_run_on():
    """A worker held to one core (a container's cpuset, taskset) starts one, not one per core
    of the machine."""
    held = subprocess.run(
        [sys.executable, "-c", _HELD_TO_ONE_CORE], capture_output=True, text=True, check=True
    )
    assert held.stdout.split() == ["1", "1"]
    assert AnalysisSettings(scan_processes=3).scan_process_count == 3


_HELD_TO_ONE_CORE = """
import os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
from analysis_service.settings import AnalysisSettings
from shared.processes import usable_cores
print(usable_cores(), AnalysisSettings(scan_processes=0).scan_process_count)
"""
