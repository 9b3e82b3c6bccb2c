"""A worker loads the offline reasoner's libraries (about 250 MiB) only for a job that will
discover with them, while its captions are made: not when it starts, not to scan."""

from __future__ import annotations

import os
import subprocess
import sys

_WORKER = """
import sys, threading, time
import analysis_service.worker
from analysis_service.reasoners.factory import load_offline_reasoner_ahead
from analysis_service.settings import AnalysisSettings
print("sklearn" in sys.modules)
load_offline_reasoner_ahead(AnalysisSettings({llm}))
for thread in threading.enumerate():
    if thread.name == "load-offline-reasoner":
        thread.join(120)
print("sklearn" in sys.modules)
"""


def _loaded(llm: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}
    ran = subprocess.run(
        [sys.executable, "-c", _WORKER.format(llm=llm)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return ran.stdout.split()


def test_a_worker_loads_the_offline_reasoner_only_ahead_of_a_discovery_with_it():
    assert _loaded("") == ["False", "True"]


def test_a_worker_discovering_with_an_llm_never_loads_it():
    assert _loaded("llm_base_url='http://127.0.0.1:9/v1'") == ["False", "False"]
