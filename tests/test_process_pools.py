"""shared.processes' pools beyond the crashes they isolate (those: test_scan_processes.py,
test_pixel_engine.py)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import psutil
import pytest

from shared.processes import ReplaceablePool, isolating
from tests.fakes.slow_run import note_pid_then_sleep


def _pid_in(marker: Path, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while not (written := marker.read_text() if marker.exists() else ""):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    return int(written)


async def test_a_cancelled_isolation_ends_the_process_running_its_part(tmp_path: Path):
    """Its process runs this call's part alone: left to itself it would go on to the end."""
    marker = tmp_path / "pid"
    alone = ReplaceablePool(1, ["tests.fakes.slow_run"])
    call = asyncio.create_task(
        isolating([str(marker)], alone, note_pid_then_sleep, lambda item, failed: item)
    )
    process = psutil.Process(await asyncio.to_thread(_pid_in, marker))
    call.cancel()
    try:
        await call
    except asyncio.CancelledError:
        pass
    process.wait(30)  # psutil.TimeoutExpired if it runs on
    assert not process.is_running()


async def test_a_pool_the_system_refuses_to_set_up_is_broken_not_an_error_of_its_own():
    """/dev/shm full, too many semaphores: callers handle it as a pool that cannot start
    (the caption service answers 503), not as an unexpected error (a 500)."""

    def refused(context: object) -> None:
        raise OSError(28, "No space left on device")

    pool = ReplaceablePool(1, ["tests.fakes.slow_run"], sharing=refused)
    with pytest.raises(BrokenProcessPool, match="No space left"):
        await pool.running()
