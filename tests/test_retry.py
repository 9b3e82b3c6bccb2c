"""The retry policy."""

from __future__ import annotations

import pytest

from shared.retry import Busy, RetryableError, RetryPolicy


def test_delay_grows_and_respects_retry_after():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.0)
    assert [policy.delay(a) for a in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(0, hint=5.0) == 5.0


async def test_run_retries_only_retryable_errors():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableError("busy")
        return "ok"

    assert await RetryPolicy(attempts=3, base_delay=0.0).run(flaky) == "ok"

    async def broken() -> str:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        await RetryPolicy(attempts=3, base_delay=0.0).run(broken)


async def test_run_gives_up_after_attempts():
    async def down() -> None:
        raise RetryableError("down")

    with pytest.raises(RetryableError):
        await RetryPolicy(attempts=2, base_delay=0.0).run(down)


async def test_busy_is_waited_out_without_using_up_attempts():
    calls, told = [], []

    async def crowded() -> str:
        calls.append(1)
        if len(calls) in (1, 3):
            raise RetryableError("failing")
        if len(calls) < 6:
            raise Busy("at capacity", retry_after=0.001)
        return "ok"

    policy = RetryPolicy(attempts=3, base_delay=0.0, jitter=0.0)
    result = await policy.run(
        crowded, on_retry=lambda n, exc, pause: told.append((n, str(exc))), busy_wait_s=5.0
    )
    assert result == "ok" and len(calls) == 6
    assert told == [(1, "failing"), (2, "failing")]


async def test_busy_past_its_bound_is_raised():
    async def full() -> None:
        raise Busy("at capacity", retry_after=0.01)

    with pytest.raises(Busy):
        await RetryPolicy(attempts=50).run(full, busy_wait_s=0.03)
