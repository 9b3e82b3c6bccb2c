"""The shared helpers that run coroutines side by side: order kept, first failure raised bare."""

from __future__ import annotations

import asyncio

import pytest

from shared.concurrency import run_all, split_evenly, task_group


async def test_run_all_keeps_the_order_of_results():
    async def later(value: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return value

    assert await run_all(later(1, 0.03), later(2, 0.0), later(3, 0.01)) == [1, 2, 3]


async def test_first_failure_is_raised_as_itself_and_cancels_the_others():
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise KeyError("first")

    with pytest.raises(KeyError, match="first"):
        await run_all(slow(), failing())
    assert cancelled.is_set()


async def test_task_group_unwraps_the_failure():
    with pytest.raises(ValueError, match="bad"):
        async with task_group() as group:
            group.create_task(asyncio.sleep(10))
            group.create_task(asyncio.sleep(0, result=None))

            async def boom() -> None:
                raise ValueError("bad")

            group.create_task(boom())


def test_split_evenly_keeps_the_order_and_balances_the_runs():
    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_evenly([1, 2], 4) == [[1], [2]]  # never an empty run
    assert split_evenly([], 4) == []
    runs = split_evenly(list(range(100)), 8)
    assert [x for run in runs for x in run] == list(range(100))
    assert max(map(len, runs)) - min(map(len, runs)) <= 1
