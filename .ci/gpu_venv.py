"""Build or reuse the virtualenv in which `make test-vllm` checks the engine against the real
vLLM, and print its path.

It holds the project's dependencies with the `gpu` and `dev` extras, not the project itself:
the tests import the checkout they run from. The `gpu` extra (vLLM, torch, CUDA libraries:
about 11 GB) is the bulk, so there is one virtualenv per `gpu` extra, named by a hash of it: a
pin change builds a new one (and removes the old), a change elsewhere only brings the same one
up to date, and nothing changed costs a file read.

pip decides what goes in, with its resolver and configuration, as `pip install '.[gpu]'` does
for a user (uv's own resolver chose cuda-python 12.6 beside cuda-bindings 13.5 here, two
packages that write the same files). uv then fetches and installs exactly the files pip chose,
in parallel, from a cache beside the virtualenvs on the same disk, so that the installed files
are hard links into it rather than a second copy.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import json
import os
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
UV_CACHE = "uv-cache"
PIP = (sys.executable, "-m", "pip")
UV = (sys.executable, "-m", "uv", "pip")

# pip's settings for how it reaches the files it chose, as uv's environment.
PIP_AS_UV_ENV = {
    "cert": ("SSL_CERT_FILE",),
    "client-cert": ("SSL_CLIENT_CERT",),
    "timeout": ("UV_HTTP_TIMEOUT",),
    "default-timeout": ("UV_HTTP_TIMEOUT",),
    "proxy": ("HTTP_PROXY", "HTTPS_PROXY"),
}
# `pip install` reads the `install` section over `global`, and PIP_* variables over both.
PIP_SECTIONS = ("global", "install", ":env:")


def requirements(pyproject: Path) -> tuple[list[str], list[str]]:
    """(the gpu extra, every requirement the virtualenv needs)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    return extras["gpu"], [*project["dependencies"], *extras["gpu"], *extras["dev"]]


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def pip_settings() -> dict[str, str]:
    """What `pip install` runs with: its configuration files and PIP_* variables."""
    listed = subprocess.run(
        [*PIP, "config", "list"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    by_section: dict[str, dict[str, str]] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.rpartition(".")
        by_section.setdefault(section, {})[name.replace("_", "-")] = ast.literal_eval(value)
    return {name: value for s in PIP_SECTIONS for name, value in by_section.get(s, {}).items()}


def uv_transport(pip: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(uv's options, its environment variables) to reach files the way pip with `pip` does."""
    # pip trusts the system's certificate store; uv, unless told, a bundled one.
    options = ["--system-certs"]
    for host in pip.get("trusted-host", "").split():
        options += ["--allow-insecure-host", host]
    env = {var: pip[name] for name, vars in PIP_AS_UV_ENV.items() if name in pip for var in vars}
    return options, env


def resolve(python: Path, listed: Path, timeout_s: float) -> list[str]:
    """What `pip install -r listed` would add to the virtualenv of `python`: each file it chose
    (URL and hash, from its `--report`), as a requirement."""
    command: list[str | Path] = [*PIP, "--python", python, "install", "--dry-run", "-qq"]
    report = subprocess.run(
        [*command, "--report", "-", "-r", listed],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout_s,
    )
    files = []
    for item in json.loads(report.stdout)["install"]:
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        line = f"{item['metadata']['name']} @ {item['download_info']['url']}"
        files.append(" ".join([line, *(f"--hash={alg}:{value}" for alg, value in hashes.items())]))
    return files


def fetch(python: Path, chosen: Path, cache: Path, timeout_s: float) -> None:
    """Install exactly the files listed in `chosen`, none of their dependencies, with uv."""
    options, env = uv_transport(pip_settings())
    # No bytecode now (pip's and `uv --compile-bytecode`'s way): compiling all ~11 GB took
    # three of the five minutes of a cold build, for files no test imports. `make test-vllm`
    # lets Python write the bytecode of what the tests do import, once, on the first run.
    command: list[str | Path] = [*UV, "install", "--quiet", "--no-config", "--no-deps", *options]
    subprocess.run(
        [*command, "--cache-dir", cache, "--python", python, "-r", chosen],
        env={**os.environ, **env},
        check=True,
        timeout=timeout_s,
    )


def install(target: Path, wanted: str, cache: Path, timeout_s: float) -> None:
    python = target / "bin" / "python"
    if not python.exists():
        venv.create(target, with_pip=True)  # pip too: the suite reads pip's settings there
    (target / STAMP).unlink(missing_ok=True)
    listed = target / "requirements.in"
    listed.write_text(wanted)
    started = time.monotonic()
    print(f"resolving vLLM and the test requirements for {target}", file=sys.stderr)
    files = resolve(python, listed, timeout_s)
    print(f"{len(files)} to install, chosen in {time.monotonic() - started:.0f} s", file=sys.stderr)
    if files:
        chosen = target / "requirements.txt"
        chosen.write_text("\n".join(files) + "\n")
        fetch(python, chosen, cache, timeout_s)
        print(f"installed in {time.monotonic() - started:.0f} s", file=sys.stderr)
    (target / STAMP).write_text(wanted)


def prune(home: Path, keep: Path) -> None:
    """Remove the virtualenvs of earlier pins (each one is ~11 GB) and, with them, uv's cache:
    the kept one's files outlive it (hard links), what only the old ones used would stay forever.
    """
    old = [d for d in home.iterdir() if d != keep and d.is_dir() and NAME.fullmatch(d.name)]
    for folder in old:
        shutil.rmtree(folder)
    if old:
        shutil.rmtree(home / UV_CACHE, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path.home() / ".cache" / "subpop")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds each step may take")
    args = parser.parse_args()
    gpu, everything = requirements(ROOT / "pyproject.toml")
    args.home.mkdir(parents=True, exist_ok=True)
    target = args.home / f"vllm-{digest(gpu)}"
    wanted = "\n".join(everything) + "\n"
    with (args.home / "vllm-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two checkouts never build the same one at once
        stamp = target / STAMP
        if not stamp.exists() or stamp.read_text() != wanted:
            install(target, wanted, args.home / UV_CACHE, args.timeout)
        prune(args.home, target)
    print(target)


if __name__ == "__main__":
    main()
