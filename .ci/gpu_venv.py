"""Build or reuse the virtualenv in which `make test-vllm` checks the engine against the real
vLLM, and print its path.

It holds the project's dependencies with the `gpu` and `dev` extras, not the project itself:
the tests import the checkout they run from. The `gpu` extra (vLLM, torch, CUDA libraries:
about 11 GB) takes minutes to install, so there is one virtualenv per `gpu` extra, named by a
hash of it: a pin change builds a new one (and removes the old), a change elsewhere only
brings the same one up to date, and nothing changed costs a file read.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Written last: a build that was cut short has none and is resumed by the next run.
STAMP = "subpop-requirements.txt"
NAME = re.compile(r"vllm-[0-9a-f]{16}")


def requirements(pyproject: Path) -> tuple[list[str], list[str]]:
    """(the gpu extra, every requirement the virtualenv needs)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    return extras["gpu"], [*project["dependencies"], *extras["gpu"], *extras["dev"]]


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def install(target: Path, wanted: str, timeout_s: float) -> None:
    python = target / "bin" / "python"
    if not python.exists():
        venv.create(target, with_pip=True)
    (target / STAMP).unlink(missing_ok=True)
    listed = target / "requirements.in"
    listed.write_text(wanted)
    started = time.monotonic()
    print(f"installing vLLM and the test requirements into {target}", file=sys.stderr)
    subprocess.run(
        [python, "-m", "pip", "install", "-qq", "-r", listed], check=True, timeout=timeout_s
    )
    print(f"installed in {time.monotonic() - started:.0f} s", file=sys.stderr)
    (target / STAMP).write_text(wanted)


def prune(home: Path, keep: Path) -> None:
    """Remove the virtualenvs of earlier pins: each one is ~11 GB."""
    for old in home.iterdir():
        if old != keep and old.is_dir() and NAME.fullmatch(old.name):
            shutil.rmtree(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path.home() / ".cache" / "subpop")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds pip may take")
    args = parser.parse_args()
    gpu, everything = requirements(ROOT / "pyproject.toml")
    args.home.mkdir(parents=True, exist_ok=True)
    target = args.home / f"vllm-{digest(gpu)}"
    wanted = "\n".join(everything) + "\n"
    with (args.home / "vllm-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two checkouts never build the same one at once
        stamp = target / STAMP
        if not stamp.exists() or stamp.read_text() != wanted:
            install(target, wanted, args.timeout)
        prune(args.home, target)
    print(target)


if __name__ == "__main__":
    main()
