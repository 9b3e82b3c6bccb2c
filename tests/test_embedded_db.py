"""The embedded Postgres's holder list survives holders killed with -9."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from analysis_service.embedded_db import _forget_dead_holders


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_holders_are_forgotten(tmp_path: Path):
    pgdata = tmp_path / "pg"
    pgdata.mkdir()
    holders = pgdata / ".handle_pids.json"
    holders.write_text(json.dumps([dead_pid(), os.getpid()]))
    fake_pgserver = SimpleNamespace(PostgresServer=SimpleNamespace(_lock=contextlib.nullcontext()))
    _forget_dead_holders(fake_pgserver, pgdata)
    assert json.loads(holders.read_text()) == [os.getpid()]


def test_no_holder_file_is_fine(tmp_path: Path):
    fake_pgserver = SimpleNamespace(PostgresServer=SimpleNamespace(_lock=contextlib.nullcontext()))
    _forget_dead_holders(fake_pgserver, tmp_path)
    assert not (tmp_path / ".handle_pids.json").exists()
