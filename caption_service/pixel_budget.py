"""The pixels being decoded at once, across every decoding thread: one budget shared by weight.

MAX_IMAGE_PIXELS bounds one image, but many small files with huge canvases decoded side by side
could still exhaust memory. Each decode first takes its pixel count, known from the header
before any pixel is decoded, from this budget (MAX_DECODE_PIXELS_IN_FLIGHT), and gives it back
once the image is decoded and shrunk. A decode that does not fit waits, first come first
served so that a large image is not starved by small ones, for at most CAPTION_DECODE_WAIT_S;
an image larger than the whole budget is refused at once.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from caption_service import metrics
from shared.imaging import InvalidImage


class DecoderBusy(Exception):
    """The budget stayed used up for the whole wait; the request is answered 503 with
    Retry-After, not an error of the image."""


class PixelBudget:
    """A counting semaphore by weight (pixels) for threads; `peak` is the most ever held."""

    def __init__(self, capacity: int, wait_s: float):
        self.capacity = capacity
        self.wait_s = wait_s
        self.in_use = 0
        self.peak = 0
        self._changed = threading.Condition()
        self._line: deque[object] = deque()

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
                self.in_use -= pixels
                metrics.DECODE_PIXELS.set(self.in_use)
                self._changed.notify_all()

    def _take(self, pixels: int) -> None:
        turn = object()
        with self._changed:
            self._line.append(turn)
            try:
                fits = self._changed.wait_for(
                    lambda: self._line[0] is turn and self.in_use + pixels <= self.capacity,
                    timeout=self.wait_s,
                )
            finally:
                self._line.remove(turn)
                self._changed.notify_all()  # the next in line may fit now
            if not fits:
                raise DecoderBusy(
                    f"{self.in_use} pixels being decoded (MAX_DECODE_PIXELS_IN_FLIGHT="
                    f"{self.capacity}); an image of {pixels} waited {self.wait_s:g} s"
                )
            self.in_use += pixels
            self.peak = max(self.peak, self.in_use)
            metrics.DECODE_PIXELS.set(self.in_use)
