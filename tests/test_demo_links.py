"""What `make demo` says at the end: how to open its job in the explorer and with `subpop`."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from analysis_service.demo_links import cli_command, next_steps
from analysis_service.launcher import LauncherSettings

JOB = "2f0c0000-0000-0000-0000-000000000000"
SECRET = "demo-" + "s" * 32


def _settings(**overrides: object) -> LauncherSettings:
    values: dict[str, object] = {
        "database_url": None,
        "state_dir": Path(".state"),
        "data_roots": "./data",
        "analysis_api_keys": "",
    }
    return LauncherSettings(**(values | overrides))  # type: ignore[arg-type]


def test_after_its_own_services_stopped_it_says_make_serve_and_where_the_job_is_kept():
    lines = next_steps(_settings(), "http://127.0.0.1:8000", JOB, True, None)
    assert (
        lines[0] == f"open it in the explorer: make serve, then http://127.0.0.1:8000/ui/jobs/{JOB}"
    )
    assert lines[1] == "  (the embedded database under .state keeps it)"
    assert lines[2] == f"or from a terminal: {cli_command()} tree {JOB}"


def test_a_dataset_outside_the_data_roots_is_named_for_make_serve():
    lines = next_steps(_settings(), "http://127.0.0.1:8000", JOB, True, Path("/srv/pets"))
    assert lines[0].startswith("open it in the explorer: DATA_ROOTS=./data:/srv/pets make serve")
    database = _settings(database_url="postgresql://db.example/subpop")
    kept = next_steps(database, "http://127.0.0.1:8000", JOB, True, None)[1]
    assert kept == "  (the database of DATABASE_URL keeps it)"


def test_services_left_running_on_another_port_with_keys():
    keyed = _settings(analysis_api_keys=f"demo:{SECRET}")
    lines = next_steps(keyed, "http://127.0.0.1:8123", JOB, False, None)
    assert lines[0] == f"open it in the explorer: http://127.0.0.1:8123/ui/jobs/{JOB}"
    assert "http://127.0.0.1:8123/ui/login" in lines[1]
    assert lines[2].endswith(f"tree {JOB} --api http://127.0.0.1:8123")
    assert "SUBPOP_API_KEY" in lines[3]
    assert SECRET not in "\n".join(lines)


def test_the_command_it_names_runs():
    done = subprocess.run(
        [*shlex.split(cli_command()), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "tree" in done.stdout
