"""The pixels being decoded at once, across every decoder: one budget shared by weight.

MAX_IMAGE_PIXELS bounds one image, but many small files with huge canvases decoded side by side
could still exhaust memory. Each decode first takes its pixel count, known from the header
before any pixel is decoded, from this budget (MAX_DECODE_PIXELS_IN_FLIGHT), and gives it back
once the image is decoded and shrunk. A decode that does not fit waits, for at most
CAPTION_DECODE_WAIT_S in all, at the head of the line: the decodes behind it, small or large,
wait for the head rather than overtake it, so small images cannot keep a large one waiting for
ever (who comes next to the head is up to the lock, not strictly first come). An image larger
than the whole budget is refused at once.

The decoders are the service's threads, or the processes of an engine that decodes its own
files (the pixel engine): `PixelBudget.across(context, ...)` is the same budget in memory
those processes share, handed to each as it starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from shared.imaging import InvalidImage


class DecoderBusy(Exception):
    """The budget stayed used up for the whole wait; the request is answered 503 with
    Retry-After, not an error of the image."""


@dataclass
class _Count:
    """An int behind `.value`, as multiprocessing's shared Value has one."""

    value: int = 0


class PixelBudget:
    """A counting semaphore by weight (pixels); `peak` is the most ever held. The waiter at
    the head of the line holds `_line` while it waits for its pixels."""

    def __init__(
        self,
        capacity: int,
        wait_s: float,
        *,
        line: Any = None,
        changed: Any = None,
        in_use: Any = None,
        peak: Any = None,
    ):
        self.capacity = capacity
        self.wait_s = wait_s
        # `is None`, not `or`: a shared count of 0 is falsy.
        self._line = threading.Lock() if line is None else line
        self._changed = threading.Condition() if changed is None else changed
        self._in_use = _Count() if in_use is None else in_use
        self._peak = _Count() if peak is None else peak

    @classmethod
    def across(cls, context: BaseContext, capacity: int, wait_s: float) -> PixelBudget:
        """The budget for the processes of `context`: its lock, condition and counts in shared
        memory. It reaches a process only as it starts (an initializer's argument)."""
        return cls(
            capacity,
            wait_s,
            line=context.Lock(),
            changed=context.Condition(),
            in_use=context.Value("q", 0, lock=False),  # read and written under _changed
            peak=context.Value("q", 0, lock=False),
        )

    @property
    def in_use(self) -> int:
        return int(self._in_use.value)

    @property
    def peak(self) -> int:
        return int(self._peak.value)

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Hold `pixels` of the budget for the duration of the block."""
        if pixels > self.capacity:
            raise InvalidImage(
                f"too many pixels to decode: {pixels} > the {self.capacity} that may be decoded "
                "at once (MAX_DECODE_PIXELS_IN_FLIGHT)"
            )
        self._take(pixels)
        try:
            yield
        finally:
            with self._changed:
                self._in_use.value -= pixels
                self._changed.notify_all()

    def _take(self, pixels: int) -> None:
        deadline = time.monotonic() + self.wait_s
        if not self._line.acquire(True, self.wait_s):
            self._busy(pixels)
        try:
            with self._changed:
                fits = self._changed.wait_for(
                    lambda: self._in_use.value + pixels <= self.capacity,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                if not fits:
                    self._busy(pixels)
                self._in_use.value += pixels
                self._peak.value = max(self._peak.value, self._in_use.value)
        finally:
            self._line.release()

    def _busy(self, pixels: int) -> None:
        raise DecoderBusy(
            f"{self.in_use} pixels being decoded (MAX_DECODE_PIXELS_IN_FLIGHT="
            f"{self.capacity}); an image of {pixels} waited {self.wait_s:g} s"
        )
