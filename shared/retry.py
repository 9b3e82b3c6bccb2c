"""One retry policy object used by every remote call."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class RetryableError(Exception):
    """A failure worth another attempt; retry_after is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Busy(RetryableError):
    """The server is at capacity, not failing (back-pressure): waited out as long as it asks
    (1 s when it does not say) without using up an attempt, within RetryPolicy.run's
    busy_wait_s."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Exponential back-off, never shorter than the server's Retry-After."""
        backoff = min(self.max_delay, self.base_delay * (2**attempt))
        backoff *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(backoff, min(hint or 0.0, self.max_delay * 4))

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        on_retry: Callable[[int, RetryableError, float], None] | None = None,
        busy_wait_s: float = 0.0,
    ) -> T:
        """Call until success or attempts run out; only RetryableError is retried.

        `on_retry(failures, error, pause)` is told of each failure before its pause. Busy
        answers are waited out until busy_wait_s has passed since the first one, then the
        last is raised."""
        failures, busy_since = 0, None
        while True:
            try:
                return await call()
            except Busy as exc:
                busy_since = busy_since or time.monotonic()
                if time.monotonic() - busy_since > busy_wait_s:
                    raise
                await asyncio.sleep(exc.retry_after or 1.0)
            except RetryableError as exc:
                failures += 1
                if failures >= self.attempts:
                    raise
                pause = self.delay(failures - 1, exc.retry_after)
                if on_retry:
                    on_retry(failures, exc, pause)
                await asyncio.sleep(pause)
