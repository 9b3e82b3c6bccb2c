"""The README's count of the tests `make test-vllm` runs is what pytest collects from the
Makefile's VLLM_TESTS: a test added to those files without the README following fails here.

A file that needs vLLM is counted only where vLLM is installed (`make test-vllm
VLLM_TESTS=tests` counts it); elsewhere pytest skips the whole module."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NEEDS_VLLM = {"tests/test_vllm_real_api.py"}


def vllm_tests() -> list[str]:
    """The files VLLM_TESTS names by default in the Makefile."""
    found = re.search(r"^VLLM_TESTS \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile sets no default VLLM_TESTS"
    return found[1].split()


def readme_counts() -> tuple[int, dict[str, int]]:
    """(the total the README gives, the count it gives for each file)."""
    total = re.search(r"It runs the (\d+) tests\s+of `VLLM_TESTS`", README)
    assert total, "the README does not say how many tests `make test-vllm` runs"
    each = {path: int(n) for n, path in re.findall(r"(\d+) in `(tests/[\w/]+\.py)`", README)}
    return int(total[1]), each


def collected(path: str) -> int:
    """How many tests pytest collects from a file, in a process of its own."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return sum(1 for line in out.stdout.splitlines() if line.startswith(f"{path}::"))


def test_the_readme_counts_every_file_and_their_sum():
    total, each = readme_counts()
    assert set(each) == set(vllm_tests())
    assert sum(each.values()) == total


@pytest.mark.parametrize("path", vllm_tests())
def test_the_readme_count_of_a_file_is_what_pytest_collects(path: str):
    if path in NEEDS_VLLM and importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed: pytest skips this module here")
    assert readme_counts()[1][path] == collected(path)
