"""The offline default engine: a CPU describer of measurable image properties.

It does not recognise objects. It writes what pixel statistics support: dominant colours,
the colour of the upper and lower parts, brightness, saturation, contrast, texture and
orientation. That is enough to split many datasets by background and lighting, and it lets
the whole product run end to end without a GPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import TypeVar

from PIL import Image

from caption_service.engines import pixel_stats as ps
from caption_service.engines.base import EngineOutput, EngineUnavailable, FileCaption
from caption_service.images import prepare_one
from caption_service.pixel_budget import PixelBudget
from shared.caption_contract import CaptionImage, EngineInfo
from shared.concurrency import run_all, split_evenly
from shared.imaging import ImageLimits
from shared.processes import ReplaceablePool

PROMPT_VERSION = "pixel-v1"
#: The fewest images a describing process is handed at once (unless the batch has fewer):
#: each hand-off costs the service's process a pickling and the pool's bookkeeping, under
#: its GIL, so on a machine of many cores runs of one or two images cost it more than they
#: spread. Other requests in flight keep the remaining processes busy.
LEAST_RUN = 8

T = TypeVar("T")
R = TypeVar("R")


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


#: In a describing process, its pool's decode budget, shared with the pool's other processes
#: (received as the process starts).
_BUDGET: PixelBudget | None = None


def _use_budget(budget: PixelBudget) -> None:
    global _BUDGET
    _BUDGET = budget


def _describe_files(
    items: list[CaptionImage], limits: ImageLimits, roots: list[Path]
) -> list[FileCaption]:
    """In a describing process: each item read, checked, decoded (holding its pixels of the
    pool's budget) and described in turn, as the service prepares images for any engine."""
    assert _BUDGET is not None, "a describing process receives its budget as it starts"
    described = []
    for item in items:
        prepared = prepare_one(item, limits, roots, _BUDGET, PixelEngine.max_side)
        if isinstance(prepared, str):
            described.append(FileCaption(None, error=prepared))
        else:
            described.append(FileCaption(describe(prepared.image), sha256=prepared.sha256))
    return described


class PixelEngine:
    """CPU describer. Measuring is numpy on small arrays and Python, which hold the GIL most
    of the time, so it runs in `processes` processes of the engine's own. A request's files
    are read, checked, decoded and measured there too (caption_files): in the service's
    threads their Python share held that process's GIL, which capped one service at about
    one core's worth of requests whatever the cores (about 800 images a second on 16).
    Only paths (or sent bytes) cross to the processes, and captions come back.

    `caption` measures images decoded elsewhere: they are shrunk to their analysis copies in
    the service's threads (Pillow's C code, which lets the other threads run), and only the
    copies, at most 96 pixels a side, cross."""

    max_side = 256
    short_side: int | None = None

    def __init__(
        self, threads: Executor, processes: int, *, decode_pixels: int, decode_wait_s: float
    ):
        self._threads = threads
        self._processes = processes
        # Their fork server imports this module (numpy, Pillow) once. Each pool has its
        # decode budget (MAX_DECODE_PIXELS_IN_FLIGHT): a process that died holding pixels
        # leaves its pool's budget short, and a broken pool is replaced with its budget.
        self._pool = ReplaceablePool(
            processes,
            preload=[__name__],
            sharing=partial(PixelBudget.across, capacity=decode_pixels, wait_s=decode_wait_s),
            install=_use_budget,
        )

    @property
    def decode_budget(self) -> PixelBudget | None:
        """The running pool's decode budget; None before the pool has started."""
        budget: PixelBudget | None = self._pool.shared
        return budget

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
        runs = split_evenly(images, self._processes, LEAST_RUN)
        # A failure or a cancellation cancels the runs not started yet, here and below.
        copies = await run_all(
            *(loop.run_in_executor(self._threads, _analysis_copies, run) for run in runs)
        )
        described = await self._in_processes(_describe_copies, copies)
        return [EngineOutput(caption=text) for text in described]

    async def caption_files(
        self, items: list[CaptionImage], limits: ImageLimits, roots: list[Path]
    ) -> list[FileCaption]:
        """The batch read, decoded and described in the describing processes (ReadsItsFiles):
        of each image only its path (or bytes) crosses, and its caption comes back."""
        runs = split_evenly(items, self._processes, LEAST_RUN)
        describe_run = partial(_describe_files, limits=limits, roots=roots)
        return await self._in_processes(describe_run, runs)

    async def _in_processes(
        self, work: Callable[[list[T]], list[R]], runs: list[list[T]]
    ) -> list[R]:
        """`work` on each run in a describing process; the results in order."""
        loop = asyncio.get_running_loop()
        pool = None
        try:
            pool = await self._pool.running()
            done = await run_all(*(loop.run_in_executor(pool, work, run) for run in runs))
        except BrokenProcessPool as exc:
            # A describing process died (killed, out of memory), and every run in the pool
            # with it: a new pool serves the next requests, and this one is answered as
            # unavailable for now, to be retried.
            if pool is not None:
                self._pool.replace(pool)
            raise EngineUnavailable(f"a describing process died: {exc}", retry_after=1.0) from None
        return [result for run in done for result in run]

    async def check_health(self) -> None:
        return None

    async def close(self) -> None:
        await self._pool.close()
