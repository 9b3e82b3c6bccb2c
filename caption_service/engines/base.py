"""The protocol every caption engine implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from shared.caption_contract import EngineInfo


@dataclass
class EngineOutput:
    caption: str | None
    error: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None


class EngineDead(RuntimeError):
    """The caption engine is dead and cannot serve requests until the service restarts."""


class EngineUnavailable(RuntimeError):
    """The engine's backend cannot be reached now; the request may be retried later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class CaptionEngine(Protocol):
    #: Longest side an image may have when it reaches the engine.
    max_side: int
    #: When set, images are shrunk until their short side is this (models that centre-crop).
    short_side: int | None

    def info(self, class_hint: bool = False) -> EngineInfo:
        """Engine, model, prompt and parameters: together they identify a caption."""
        ...

    async def caption(
        self, images: list[Image.Image], instructions: list[str]
    ) -> list[EngineOutput]:
        """Caption RGB images, one output per image, in order."""
        ...

    async def check_health(self) -> None:
        """Raise EngineDead when the engine cannot serve."""
        ...

    async def close(self) -> None: ...
