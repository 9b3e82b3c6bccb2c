"""The embedded Postgres (pgserver) used when DATABASE_URL is unset.

pgserver counts the processes holding a server in its data folder and stops Postgres when the
last one exits, so `make serve` and any extra `make worker` can share one embedded server.
Every entry point finds its database through `resolve_database_url`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from analysis_service.database_admin import ensure_database
from analysis_service.settings import AnalysisSettings

logger = logging.getLogger(__name__)

DATABASE_NAME = "subpop"


def embedded_server(state_dir: Path, *, keep_running: bool = False) -> Any:
    """Start (or join) the embedded server under state_dir; a pgserver.PostgresServer."""
    # pgserver keeps its lock file in the user's runtime dir, which shells over SSH or in CI
    # often lack; give it a private one.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path("/tmp") / f"runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pgserver  # imported late: it touches the filesystem at import

    state_dir = state_dir.expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_holders(pgserver, state_dir / "pg")
    return pgserver.get_server(state_dir / "pg", cleanup_mode=None if keep_running else "stop")


def _forget_dead_holders(pgserver: Any, pgdata: Path) -> None:
    """pgserver stops Postgres when its last holder exits, counting holders by pid in a file.
    A holder killed with -9 never leaves that list, and Postgres would then never be stopped;
    drop pids that are no longer running, under pgserver's own lock."""
    holders = pgdata / ".handle_pids.json"
    if not holders.exists():
        return
    import json

    import psutil

    with pgserver.PostgresServer._lock:
        try:
            pids = json.loads(holders.read_text())
        except ValueError:
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            holders.write_text(json.dumps(alive))


def resolve_database_url(settings: AnalysisSettings, *, database: str = DATABASE_NAME) -> str:
    """DATABASE_URL when set; otherwise the embedded server under STATE_DIR, started or joined,
    which this process then holds until it exits."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.state_dir, database=database)


def start_embedded(
    state_dir: Path, *, database: str = DATABASE_NAME, keep_running: bool = False
) -> str:
    """Start (or join) the embedded server and return a libpq URL to `database` on it."""
    server = embedded_server(state_dir, keep_running=keep_running)
    admin_url = server.get_uri("postgres")
    ensure_database(admin_url, database)
    url = server.get_uri(database)
    logger.info("embedded postgres ready in %s", server.pgdata)
    return url
