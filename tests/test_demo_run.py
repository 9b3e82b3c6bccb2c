"""`make demo` from start to end: services started by the demo itself, the job, the slices,
the group labels and how to open the job again. Slow-ish (about 15 s): it is the first thing a
new user runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from analysis_service.sample_data import make_sample_dataset
from tests.loopback import free_port


def test_the_demo_runs_the_main_job_and_acts_on_it(tmp_path: Path, database_url: str):
    dataset = tmp_path / "data" / "sample"
    make_sample_dataset(dataset)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STATE_DIR": str(tmp_path / "state"),
        "DATA_ROOTS": str(tmp_path / "data"),
        "ANALYSIS_PORT": str(free_port()),
        "CAPTION_PORT": str(free_port()),
        "ANALYSIS_API_KEYS": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "analysis_service.demo", "--dataset", str(dataset)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "images analysed" in out
    assert "where the model fails" in out
    assert "group labels for robust training" in out
    assert "/ui/jobs/" in out
