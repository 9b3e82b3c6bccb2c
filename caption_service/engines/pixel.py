"""The offline default engine: a CPU describer of measurable image properties.

It does not recognise objects. It writes what pixel statistics support: dominant colours,
the colour of the upper and lower parts, brightness, saturation, contrast, texture and
orientation. That is enough to split many datasets by background and lighting, and it lets
the whole product run end to end without a GPU.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool

from PIL import Image

from caption_service.engines import pixel_stats as ps
from caption_service.engines.base import EngineOutput, EngineUnavailable
from shared.caption_contract import EngineInfo
from shared.concurrency import run_all, split_evenly
from shared.processes import ReplaceablePool

PROMPT_VERSION = "pixel-v1"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _sentence(stats: ps.PixelStats) -> str:
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


def describe(image: Image.Image) -> str:
    """One sentence about an RGB image, built only from its measured statistics."""
    return _sentence(ps.measure(image))


def _analysis_copies(images: list[Image.Image]) -> list[ps.AnalysisCopy]:
    return [ps.analysis_copy(image) for image in images]


def _describe_copies(copies: list[ps.AnalysisCopy]) -> list[str]:
    return [_sentence(ps.measure_copy(copy)) for copy in copies]


class PixelEngine:
    """CPU describer. Measuring is numpy on small arrays and Python, which hold the GIL most
    of the time: in threads of the service's one process it could use one core whatever
    their number. So each run of a batch's images is shrunk to its analysis copies in the
    service's threads (Pillow's C code, which lets the other threads run), and measured in
    one of `processes` processes of the engine's own; the copies, at most 96 pixels a
    side, are all that crosses to them."""

    max_side = 256
    short_side: int | None = None

    def __init__(self, threads: Executor, processes: int):
        self._threads = threads
        self._processes = processes
        # Their fork server imports this module (numpy, Pillow) once.
        self._pool = ReplaceablePool(processes, preload=[__name__])

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
        runs = split_evenly(images, self._processes)
        # A failure or a cancellation cancels the runs not started yet, here and below.
        copies = await run_all(
            *(loop.run_in_executor(self._threads, _analysis_copies, run) for run in runs)
        )
        pool = None
        try:
            pool = await self._pool.running()
            described = await run_all(
                *(loop.run_in_executor(pool, _describe_copies, run) for run in copies)
            )
        except BrokenProcessPool as exc:
            # A describing process died (killed, out of memory), and every run in the pool
            # with it: a new pool serves the next requests, and this one is answered as
            # unavailable for now, to be retried.
            if pool is not None:
                self._pool.replace(pool)
            raise EngineUnavailable(f"a describing process died: {exc}", retry_after=1.0) from None
        return [EngineOutput(caption=text) for run in described for text in run]

    async def check_health(self) -> None:
        return None

    async def close(self) -> None:
        await self._pool.close()
