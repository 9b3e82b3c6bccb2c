"""Running coroutines side by side: the first failure cancels the rest and is raised as itself.

asyncio.gather leaves the other calls running after one fails (they would outlive the job
that asked for them), and a bare TaskGroup wraps the failure in an ExceptionGroup whose
message ("unhandled errors in a TaskGroup") would become the job's error. Both helpers here
cancel the siblings and re-raise the first failure: the first one is the story, the others
are its consequences.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
P = TypeVar("P")


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """An asyncio.TaskGroup whose failure surfaces as its first exception, unwrapped."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def run_all(*awaitables: Awaitable[T]) -> list[T]:
    """Like asyncio.gather: the results in order. Unlike it, the first failure cancels the
    others before it propagates."""
    async with task_group() as group:
        tasks = [group.create_task(_awaited(a)) for a in awaitables]
    return [task.result() for task in tasks]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def split_evenly(items: list[T], parts: int, least: int = 1) -> list[list[T]]:
    """items cut into at most `parts` runs in order, their lengths differing by at most one
    (no empty run), each of at least `least` items where there are that many: work for
    `parts` workers with one hand-off each, and no hand-off that costs more than its run."""
    count = min(parts, max(1, len(items) // max(1, least)), len(items))
    if count <= 0:
        return []
    size, extra = divmod(len(items), count)
    runs, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        runs.append(items[start:end])
        start = end
    return runs


class PerLoop(Generic[P]):
    """One make() for the running event loop (a fresh one when another loop runs): an asyncio
    lock or semaphore belongs to the loop that first waits on it, and an object that outlives
    a loop (a pool or an engine used by one test's loop, then the next's) needs its own in
    each."""

    def __init__(self, make: Callable[[], P]):
        self._make = make
        self._made: P | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> P:
        loop = asyncio.get_running_loop()
        if self._made is None or self._loop is not loop:
            self._made, self._loop = self._make(), loop
        return self._made
