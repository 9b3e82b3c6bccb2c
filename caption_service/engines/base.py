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


class EngineDead(RuntimeError):
    """The engine can no longer serve requests."""


class CaptionEngine(Protocol):
    info: EngineInfo
    #: Longest image side the engine needs; images are shrunk to it before reaching it.
    max_side: int

    async def caption(self, images: list[Image.Image]) -> list[EngineOutput]:
        """Caption RGB images, one output per image, in order."""
        ...

    async def check_health(self) -> None:
        """Raise EngineDead when the engine cannot serve."""
        ...

    async def close(self) -> None: ...
