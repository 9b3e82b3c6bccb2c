"""`make serve`: embedded Postgres, migrations, caption service, analysis API and one worker.

Everything runs in the foreground; Ctrl-C (or SIGTERM) stops all of it cleanly. A child that
dies (a worker killed with -9, say) is started again; one that keeps dying stops everything.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

from pydantic import Field

from analysis_service.api import ApiServerSettings
from analysis_service.auth.exposure import open_mode_refusal
from analysis_service.embedded_db import resolve_database_url
from analysis_service.migrate import upgrade
from shared.logging import configure_logging
from shared.loopback import is_loopback_host

logger = logging.getLogger("launcher")
MAX_RESTARTS = 5  # within RESTART_WINDOW_S, then the launcher gives up
RESTART_WINDOW_S = 60.0


class LauncherSettings(ApiServerSettings):
    caption_port: int = Field(default=8001, description="Port of the caption service.")


def _children(settings: LauncherSettings) -> dict[str, list[str]]:
    py = sys.executable
    uvicorn = [py, "-m", "uvicorn", "--factory", "--host", settings.host, "--no-access-log"]
    return {
        "caption": [
            *uvicorn,
            "--port",
            str(settings.caption_port),
            "caption_service.app:create_app",
        ],
        # HOST and ANALYSIS_PORT reach it through the environment (_child_environment).
        "analysis": [py, "-m", "analysis_service.api"],
        "worker": [py, "-m", "analysis_service.worker"],
    }


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> Callable[[], None]:
    """Run in a child before it starts: SIGTERM it when the launcher dies, even by kill -9, so
    no service outlives the launcher and holds its port (Linux; elsewhere a no-op)."""

    def arrange() -> None:
        if sys.platform != "linux":
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before the line above
            os._exit(1)

    return arrange


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Its own session, so a Ctrl-C reaches the launcher alone and it stops the children in order.
    return subprocess.Popen(
        command, env=env, start_new_session=True, preexec_fn=_die_with(os.getpid())
    )


def _stop(procs: dict[str, subprocess.Popen], timeout: float = 15.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in time; killing it", name)
            proc.kill()
            proc.wait()


def _supervise(
    procs: dict[str, subprocess.Popen],
    commands: dict[str, list[str]],
    env: dict[str, str],
    stopping: Callable[[], bool],
) -> int:
    """Restart children that exit; give up (exit code 1) on one that keeps exiting."""
    deaths: dict[str, list[float]] = {name: [] for name in commands}
    while not stopping():
        for name, proc in list(procs.items()):
            if proc.poll() is None:
                continue
            now = time.monotonic()
            deaths[name] = [t for t in deaths[name] if now - t < RESTART_WINDOW_S] + [now]
            if len(deaths[name]) > MAX_RESTARTS:
                logger.error(
                    "%s keeps exiting (code %s); stopping everything", name, proc.returncode
                )
                return 1
            logger.warning("%s exited with code %s; starting it again", name, proc.returncode)
            procs[name] = _start(commands[name], env)
        time.sleep(0.3)
    return 0


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


def _busy_port(settings: LauncherSettings) -> str | None:
    """Why the services cannot start on their ports, if one is taken."""
    for name, port in (
        ("ANALYSIS_PORT", settings.analysis_port),
        ("CAPTION_PORT", settings.caption_port),
    ):
        if port_in_use(settings.host, port):
            return f"port {port} is already in use; set {name} to a free port"
    return None


def _exposure_problem(settings: LauncherSettings, database_url: str) -> str | None:
    """Why the services must not listen on HOST: the API would be open to the network with
    no API key, or the caption service with no CAPTION_API_KEY."""
    if problem := open_mode_refusal(settings, settings.host, database_url):
        return problem
    if not settings.caption_api_key.get_secret_value() and not is_loopback_host(settings.host):
        return (
            f"refusing to listen on {settings.host!r} with no CAPTION_API_KEY: the caption "
            "service reads images for whoever calls it, and without a key it is for this "
            "machine only. Set CAPTION_API_KEY to a long random secret, or listen on a "
            "loopback address (HOST=127.0.0.1)."
        )
    return None


def _child_environment(settings: LauncherSettings, database_url: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        DATA_ROOTS=settings.data_roots,
        HOST=settings.host,
        ANALYSIS_PORT=str(settings.analysis_port),
    )
    if "CAPTION_URLS" not in os.environ:
        env["CAPTION_URLS"] = f"http://127.0.0.1:{settings.caption_port}"
    return env


def _stop_on_signals() -> Callable[[], bool]:
    """Ctrl-C and SIGTERM ask the launcher to stop; the answer says whether one came."""
    stopping = False

    def on_signal(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return lambda: stopping


def main() -> int:
    settings = LauncherSettings()
    configure_logging(settings.log_level, service="launcher")
    if problem := _busy_port(settings):
        logger.error("%s", problem)
        return 2
    url = resolve_database_url(settings)
    upgrade(url)
    if problem := _exposure_problem(settings, url):
        logger.error("%s", problem)
        return 2
    env = _child_environment(settings, url)
    stopping = _stop_on_signals()
    commands = _children(settings)
    procs = {name: _start(cmd, env) for name, cmd in commands.items()}
    logger.info(
        "analysis API on http://%s:%d (docs at /docs), caption service on :%d; Ctrl-C stops",
        settings.host,
        settings.analysis_port,
        settings.caption_port,
    )
    code = _supervise(procs, commands, env, stopping)
    _stop(procs)
    logger.info("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
