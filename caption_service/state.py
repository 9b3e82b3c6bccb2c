"""What the caption app holds for its lifetime, and its admission control."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

from caption_service.engines.base import AnyEngine, ReadsItsFiles
from caption_service.pixel_budget import PixelBudget
from caption_service.settings import CaptionSettings


@dataclass
class CaptionState:
    settings: CaptionSettings
    engine: AnyEngine
    executor: Executor
    #: The pixels the service's decoding threads may hold at once
    #: (MAX_DECODE_PIXELS_IN_FLIGHT); an engine that reads its files has its own.
    pixel_budget: PixelBudget
    in_flight: int = 0
    #: Moving average of seconds per request, for the Retry-After hint.
    recent_request_s: float = 1.0
    dead: str | None = field(default=None)

    def decode_budget(self) -> PixelBudget:
        """The budget the decodes of this moment take pixels from."""
        if isinstance(self.engine, ReadsItsFiles) and self.engine.decode_budget is not None:
            return self.engine.decode_budget
        return self.pixel_budget

    def try_admit(self, images: int) -> bool:
        """Admit a batch if it fits under the in-flight bound (no await: atomic in asyncio)."""
        if self.in_flight and self.in_flight + images > self.settings.caption_max_in_flight:
            return False
        self.in_flight += images
        return True

    def release(self, images: int, seconds: float | None) -> None:
        self.in_flight -= images
        if seconds is not None:
            self.recent_request_s = 0.8 * self.recent_request_s + 0.2 * seconds

    def retry_after_s(self) -> float:
        return max(1.0, min(30.0, self.recent_request_s / 2))
