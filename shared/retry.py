"""One retry policy object used by every remote call."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class RetryableError(Exception):
    """A failure worth another attempt; retry_after is the server's hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


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
    ) -> T:
        """Call until success or attempts run out; only RetryableError is retried."""
        for attempt in range(self.attempts):
            try:
                return await call()
            except RetryableError as exc:
                if attempt == self.attempts - 1:
                    raise
                pause = self.delay(attempt, exc.retry_after)
                if on_retry:
                    on_retry(attempt + 1, exc, pause)
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")
