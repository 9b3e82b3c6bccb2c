"""Where to look at the demo's job once the demo has ended: the explorer's page of the job and
the command-line client, with what each needs on this machine."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from analysis_service.auth.keys import env_key_secrets
from analysis_service.cli.api import DEFAULT_API
from analysis_service.launcher import LauncherSettings


def cli_command() -> str:
    """How to run the command-line client from here: the venv's `subpop` script when it is
    installed (the venv need not be on PATH), else the module."""
    script = Path(sys.executable).parent / "subpop"
    if not script.exists():
        return shlex.join([sys.executable, "-m", "analysis_service.cli"])
    relative = os.path.relpath(script)
    return shlex.quote(relative if not relative.startswith("..") else str(script))


def next_steps(
    settings: LauncherSettings, base: str, job_id: str, started: bool, extra_root: Path | None
) -> list[str]:
    """Where to see the job afterwards: the explorer (after `make serve` when the demo's own
    services have stopped; the job stays in the database they used) and the command line."""
    keyed = bool(env_key_secrets(settings.analysis_api_keys.get_secret_value()))
    page = f"{base}/ui/jobs/{job_id}"
    if not started:
        lines = [f"open it in the explorer: {page}"]
    else:
        # The demo's services read the dataset through an extra data root; `make serve` needs it
        # too, or the explorer cannot show the images.
        roots = f"DATA_ROOTS={settings.data_roots}:{extra_root} " if extra_root else ""
        kept = (
            "the database of DATABASE_URL"
            if settings.database_url
            else f"the embedded database under {settings.state_dir}"
        )
        lines = [f"open it in the explorer: {roots}make serve, then {page}", f"  ({kept} keeps it)"]
    if keyed:
        lines.append(f"  (sign in at {base}/ui/login with one of ANALYSIS_API_KEYS)")
    api = "" if base == DEFAULT_API else f" --api {base}"
    lines.append(f"or from a terminal: {cli_command()} tree {job_id}{api}")
    if keyed:
        lines.append("  (with SUBPOP_API_KEY set to one of ANALYSIS_API_KEYS)")
    return lines
