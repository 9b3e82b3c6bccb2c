"""The protocol every caption engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image

from caption_service.pixel_budget import PixelBudget
from shared.caption_contract import CaptionImage, EngineInfo
from shared.concurrency import run_all
from shared.imaging import ImageLimits


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


class Engine(Protocol):
    """What every engine does besides captioning."""

    def info(self, class_hint: bool = False) -> EngineInfo:
        """Engine, model, prompt and parameters: together they identify a caption."""
        ...

    async def check_health(self) -> None:
        """Raise EngineDead when the engine cannot serve."""
        ...

    async def close(self) -> None: ...


class CaptionEngine(Engine, Protocol):
    """An engine handed images that the service has read, checked and decoded."""

    #: Longest side an image may have when it reaches the engine.
    max_side: int
    #: When set, images are shrunk until their short side is this (models that centre-crop).
    short_side: int | None

    async def caption(
        self, images: list[Image.Image], instructions: list[str]
    ) -> list[EngineOutput]:
        """Caption RGB images, one output per image, in order."""
        ...


@dataclass(frozen=True)
class FileCaption:
    """One request item's caption, or the reason it has none (unreadable, outside the data
    roots, not an image); sha256 of the bytes it was described from."""

    caption: str | None
    error: str | None = None
    sha256: str | None = None


@runtime_checkable
class ReadsItsFiles(Engine, Protocol):
    """An engine that reads, checks and decodes a batch's files itself, in processes of its
    own, rather than being handed images decoded in the service's process: that process then
    only answers HTTP, and the engine's work is not held to one core by its GIL."""

    @property
    def decode_budget(self) -> PixelBudget | None:
        """What its decodes hold pixels of (MAX_DECODE_PIXELS_IN_FLIGHT), once it runs."""
        ...

    async def caption_files(
        self, items: list[CaptionImage], limits: ImageLimits, roots: list[Path]
    ) -> list[FileCaption]:
        """A caption or a reason per item, in order; DecoderBusy when the budget stays used
        up."""
        ...


#: An engine of either kind.
AnyEngine = CaptionEngine | ReadsItsFiles


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
