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

import contextlib
import multiprocessing
import os
import select
import threading
from concurrent.futures import ProcessPoolExecutor

import psutil


def _end_with(owner: int) -> None:
    """Start of each pooled process: it ends when its owner does."""
    watch = threading.Thread(target=_exit_after, args=(owner,), name="end-with-owner")
    watch.daemon = True
    watch.start()


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


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system tells it (a
    container given some of a machine's cores, `taskset`), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 2


def process_pool(count: int, preload: list[str]) -> ProcessPoolExecutor:
    """`count` processes, forked from a server that has imported `preload` (the modules whose
    functions they run), that end with this process.

    A process started by `python -m some.module` has its main module imported again in every
    pooled process (multiprocessing's way of finding functions defined there), unless that
    module is a package's `__main__`: keep such entry points small, or out of `preload`'s way.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(preload)
    return ProcessPoolExecutor(
        max_workers=count, mp_context=context, initializer=_end_with, initargs=(os.getpid(),)
    )
