"""The protocol every caption engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from shared.caption_contract import EngineInfo
from shared.concurrency import run_all


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


class RequestPerImage(ABC):
    """`caption` for engines that send every image as its own request: all of them in flight
    together (the backend batches them). The first failure (an unreachable endpoint, a dead
    engine) fails the batch, raised as itself; it, or the caller's cancellation, cancels every
    other image's request."""

    @abstractmethod
    async def _one(self, image: Image.Image, instruction: str) -> EngineOutput:
        """The output for one image."""

    async def caption(
        self, images: list[Image.Image], instructions: list[str]
    ) -> list[EngineOutput]:
        pairs = zip(images, instructions, strict=True)
        return await run_all(*(self._one(image, text) for image, text in pairs))
