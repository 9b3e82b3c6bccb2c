"""The offline default engine: a CPU describer of measurable image properties.

It does not recognise objects. It writes what pixel statistics support: dominant colours,
the colour of the upper and lower parts, brightness, saturation, contrast, texture and
orientation. That is enough to split many datasets by background and lighting, and it lets
the whole product run end to end without a GPU.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from PIL import Image

from caption_service.engines import pixel_stats as ps
from caption_service.engines.base import EngineOutput
from shared.caption_contract import EngineInfo
from shared.concurrency import run_all

PROMPT_VERSION = "pixel-v1"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def describe(image: Image.Image) -> str:
    """One sentence about an RGB image, built only from its measured statistics."""
    stats = ps.measure(image)
    main = [name for name, share in stats.colors[:3] if share >= 0.12] or [stats.colors[0][0]]
    light = ps.brightness_word(stats.brightness)
    sat = ps.saturation_word(stats.saturation)
    shape = ps.orientation_word(stats.width, stats.height)
    article = "An" if light[0] in "aeiou" else "A"
    return (
        f"{article} {light}, {sat} {shape} image, mostly {_join(main)}, "
        f"with a {stats.top_color} upper part and a {stats.bottom_color} lower part; "
        f"{ps.contrast_word(stats.contrast)}, {ps.detail_word(stats.detail)}."
    )


class PixelEngine:
    """CPU describer; runs in the shared thread pool so the event loop stays free."""

    max_side = 256
    short_side: int | None = None

    def __init__(self, executor: Executor):
        self._executor = executor

    def info(self, class_hint: bool = False) -> EngineInfo:
        # No prompt, so the class hint changes nothing: one identity either way.
        return EngineInfo(
            engine="pixel",
            model="pixel-statistics",
            prompt_version=PROMPT_VERSION,
            prompt="(no prompt: describes colour, light, contrast, texture and shape)",
            params={"analysis_side": 96},
        )

    async def caption(
        self, images: list[Image.Image], instructions: list[str]
    ) -> list[EngineOutput]:
        loop = asyncio.get_running_loop()
        # A failure cancels the images still queued for the pool instead of describing them.
        captions = await run_all(
            *(loop.run_in_executor(self._executor, describe, image) for image in images)
        )
        return [EngineOutput(caption=text) for text in captions]

    async def check_health(self) -> None:
        return None

    async def close(self) -> None:
        return None
