"""What the caption app holds for its lifetime."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

from caption_service.engines.base import CaptionEngine
from caption_service.settings import CaptionSettings


@dataclass
class CaptionState:
    settings: CaptionSettings
    engine: CaptionEngine
    executor: Executor
