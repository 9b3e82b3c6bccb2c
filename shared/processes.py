"""Pools of processes for CPU work that would hold one process's GIL, ending with the process
that started them.

Each pool's processes are forked from a fork server that has imported the given modules once,
so a process starts in milliseconds; never forked from the caller itself, whose threads (an
event loop, thread pools) a fork would copy mid-flight. Where there is no fork server
(Windows) they are started afresh.

A pool's processes end when the process that started them ends, even one killed outright:
otherwise each would wait on its work queue for ever (it holds that queue's other end itself),
and keep the fork server alive with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, TypeVar

import psutil

from shared.concurrency import PerLoop

T = TypeVar("T")
R = TypeVar("R")


def _end_with(owner: int, install: Callable[[Any], None] | None, shared: Any) -> None:
    """Start of each pooled process: it ends when its owner does, and receives what its pool
    shares (install(shared)). Ctrl-C in a terminal reaches the whole process group: it is the
    owner's to handle, not its pooled processes' (their deaths would look like a crash of
    whatever they were doing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch = threading.Thread(target=_exit_after, args=(owner,), name="end-with-owner")
    watch.daemon = True
    watch.start()
    if install is not None:
        install(shared)


def _exit_after(pid: int) -> None:
    try:
        ended = os.pidfd_open(pid)  # readable once the process has ended (Linux)
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd here: psutil looks every few milliseconds
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait()
        os._exit(0)
    select.select([ended], [], [])
    os._exit(0)


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: those its CPU affinity allows (a container's cpuset,
    `taskset`), else all of them, and no more than its cgroup's CPU quota (`docker --cpus`,
    Kubernetes' `limits.cpu`), rounded up."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    quota = cgroup_cpu_quota(cgroup)
    return max(1, min(cores, quota)) if quota is not None else cores


def cgroup_cpu_quota(cgroup: Path) -> int | None:
    """CPUs the cgroup's quota allows, rounded up; None without a quota (or a cgroup)."""
    try:  # cgroup v2: "max 100000", or "150000 100000" for 1.5 CPUs
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1: a quota of -1 is none
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return math.ceil(quota_us / period_us) if quota_us > 0 and period_us > 0 else None


def pool_context(preload: list[str]) -> BaseContext:
    """How pooled processes start: forked from a server that has imported `preload` (the
    modules whose functions they run).

    A process started by `python -m some.module` has its main module imported again in every
    pooled process (multiprocessing's way of finding functions defined there), unless that
    module is a package's `__main__`: keep such entry points small, or out of `preload`'s way.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(preload)
    return context


def process_pool(
    count: int,
    context: BaseContext,
    install: Callable[[Any], None] | None = None,
    shared: Any = None,
) -> ProcessPoolExecutor:
    """`count` processes of `context` that end with this process; each calls install(shared)
    as it starts (locks and shared memory reach a process only then)."""
    return ProcessPoolExecutor(
        max_workers=count,
        mp_context=context,
        initializer=_end_with,
        initargs=(os.getpid(), install, shared),
    )


def start_processes(pool: ProcessPoolExecutor, count: int) -> None:
    """Start a pool's `count` processes now (the first also starts the fork server, which
    imports its modules): a pool starts them as work comes, inside `submit`, which blocks the
    caller for up to half a second. Call it in a thread; BrokenProcessPool if one cannot run."""
    for started in [pool.submit(os.getpid) for _ in range(count)]:
        started.result()


class ReplaceablePool:
    """A process pool that starts off the event loop on first use and is replaced once broken
    (a process that dies fails every run the pool held): callers take `await running()`, run
    on it, and hand a pool that broke under them to `replace`; the next `running()` starts a
    fresh one. Concurrent callers share one start.

    With `sharing`, each pool gets what it makes (say a lock) for its processes, which
    receive it through `install` as they start: `shared` is the running pool's. A fresh one
    for each pool, since a process that died may have left its pool's in any state."""

    def __init__(
        self,
        count: int,
        preload: list[str],
        sharing: Callable[[BaseContext], Any] | None = None,
        install: Callable[[Any], None] | None = None,
    ) -> None:
        self.count = count
        self._preload = preload
        self._sharing = sharing
        self._install = install
        self.shared: Any = None
        self._pool: ProcessPoolExecutor | None = None
        self._starting = PerLoop(asyncio.Lock)

    async def running(self) -> ProcessPoolExecutor:
        """The pool, its processes started (in a thread: see _start); BrokenProcessPool when
        one cannot even start."""
        async with self._starting.get():
            if self._pool is None:
                started, self.shared = await asyncio.to_thread(self._start)
                self._pool = started
                return started
            return self._pool

    def _start(self) -> tuple[ProcessPoolExecutor, Any]:
        """In a thread: what the pool shares (named semaphores, shared memory; the first also
        starts multiprocessing's resource tracker), then its processes (start_processes).
        The system refusing any of it (/dev/shm full, no more processes or threads) is
        BrokenProcessPool, as for a process that dies as it starts."""
        try:
            context = pool_context(self._preload)
            shared = self._sharing(context) if self._sharing is not None else None
            pool = process_pool(self.count, context, self._install, shared)
        except (OSError, RuntimeError) as refused:  # RuntimeError: "can't start new thread"
            raise BrokenProcessPool(f"the processes cannot be set up: {refused}") from refused
        try:
            start_processes(pool, self.count)
        except (BrokenProcessPool, OSError, RuntimeError) as failed:
            pool.shutdown(wait=False)
            raise BrokenProcessPool(f"the processes cannot start: {failed}") from failed
        return pool, shared

    def replace(self, broken: ProcessPoolExecutor) -> bool:
        """Drop a pool that broke (or, stuck, was killed), unless another caller already did
        (then False); what it still holds finishes on its own."""
        dropped = self._pool is broken
        if dropped:
            self._pool, self.shared = None, None
        broken.shutdown(wait=False)
        return dropped

    def retire(self) -> None:
        """Shut the pool down without waiting: what it holds still finishes."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool, self.shared = None, None

    async def close(self) -> None:
        pool = self._pool
        # Dropped before the wait, so that a pool another caller starts meanwhile is not
        # lost; what the pool shared (locks are named semaphores) is released with it, not
        # left for the resource tracker to report as leaked when this process exits.
        self._pool, self.shared = None, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def kill_pooled(pool: ProcessPoolExecutor) -> None:
    """End a pool's processes at once (stuck on some work); the pool is broken after it.
    CPython keeps them in the pool's `_processes`: no public API lists them."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(OSError, ValueError):
            process.kill()


async def within(pool: ProcessPoolExecutor, timeout_s: float | None, run: Awaitable[R]) -> R:
    """What `run` (work on the pool) returns; TimeoutError when it takes longer than
    timeout_s, the pool's processes killed first (stuck on some item: the pool is broken
    after it). No limit with None."""
    try:
        return await asyncio.wait_for(run, timeout_s)
    except TimeoutError:
        kill_pooled(pool)
        raise


async def isolating(
    items: list[T],
    alone: ReplaceablePool,
    run: Callable[[list[T]], list[R]],
    blame: Callable[[T, BaseException], R],
    timeout_s: float | None = None,
) -> list[R]:
    """`run` on items again after a run of them (or one beside them) ended its process or
    stuck: in `alone`, a pool of one process, halved until one item is left, which is run
    once more in a fresh process before blame(item, failure) stands for its result (a
    process killed from outside, or by the item before, blames no one). A failure is the
    process ending (BrokenProcessPool) or, with timeout_s, the run outlasting it
    (TimeoutError; the process is killed first). The results come in the items' order, and
    `alone` is retired at the end; BrokenProcessPool escapes only when its process cannot
    start at all. A hostile item costs a few processes, never the items beside it. Anything
    else ending the call (its cancellation, say) kills the process: what it runs is this
    call's alone, and would otherwise go on to the end of its part."""
    loop = asyncio.get_running_loop()
    pending: list[tuple[list[T], bool]] = [(items, False)]  # (part, failed once alone)
    done: list[R] = []
    try:
        while pending:
            part, failed_once = pending.pop()
            pool = await alone.running()
            try:
                done += await within(pool, timeout_s, loop.run_in_executor(pool, run, part))
            except (BrokenProcessPool, TimeoutError) as failed:
                alone.replace(pool)
                if len(part) > 1:  # the first half next: the items stay in order
                    half = len(part) // 2
                    pending += [(part[half:], False), (part[:half], False)]
                elif not failed_once:
                    pending.append((part, True))
                else:
                    done.append(blame(part[0], failed))
            except BaseException:
                kill_pooled(pool)
                raise
    finally:
        alone.retire()
    return done
