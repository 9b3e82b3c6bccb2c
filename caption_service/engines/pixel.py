"""The offline default engine: a CPU describer of measurable image properties.

It does not recognise objects. It writes what pixel statistics support: dominant colours,
the colour of the upper and lower parts, brightness, saturation, contrast, texture and
orientation. That is enough to split many datasets by background and lighting, and it lets
the whole product run end to end without a GPU.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from PIL import Image

from caption_service import metrics
from caption_service.engines import pixel_stats as ps
from caption_service.engines.base import EngineUnavailable, FileCaption
from caption_service.images import prepare_one
from caption_service.pixel_budget import PixelBudget
from shared.caption_contract import CaptionImage, EngineInfo
from shared.concurrency import PerLoop, run_all, split_evenly
from shared.imaging import ImageLimits
from shared.processes import ReplaceablePool, isolating

logger = logging.getLogger(__name__)

PROMPT_VERSION = "pixel-v1"
#: The fewest images a describing process is handed at once (unless the batch has fewer):
#: each hand-off costs the service's process a pickling and the pool's bookkeeping, under
#: its GIL, so on a machine of many cores runs of one or two images cost it more than they
#: spread. Other requests in flight keep the remaining processes busy.
LEAST_RUN = 8


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


#: How many given-up batches the describing processes can tell apart: batch n's mark is
#: overwritten only by batch n + GIVEN_UP_KEPT's, long after n's runs have ended.
GIVEN_UP_KEPT = 4096


@dataclass(frozen=True)
class _PoolShared:
    """What a pool's describing processes share, in shared memory: the decode budget
    (MAX_DECODE_PIXELS_IN_FLIGHT), and the batches given up (the request cancelled, or a
    run of it failed), whose other runs stop at their next image. A fresh one with each
    pool: a process that died may have left its pool's in any state (pixels never given
    back)."""

    budget: PixelBudget
    given_up: Any  # GIVEN_UP_KEPT batch numbers, batch n's at n % GIVEN_UP_KEPT

    @classmethod
    def make(cls, context: BaseContext, capacity: int, wait_s: float) -> _PoolShared:
        return cls(
            PixelBudget.across(context, capacity, wait_s),
            context.Array("q", GIVEN_UP_KEPT, lock=False),
        )

    def give_up(self, batch: int) -> None:
        self.given_up[batch % GIVEN_UP_KEPT] = batch

    def gave_up(self, batch: int) -> bool:
        return bool(self.given_up[batch % GIVEN_UP_KEPT] == batch)


#: What a describing process runs on a run of a batch's items: (items, limits=, roots=, batch=).
DescribeRun = Callable[..., list[FileCaption]]
CRASHED = (
    "describing it ended the process that described it, twice (the decoder crashed or ran "
    "out of memory)"
)

#: In a describing process, what its pool shares (received as the process starts).
_SHARED: _PoolShared | None = None


def _receive(shared: _PoolShared) -> None:
    global _SHARED
    _SHARED = shared


def _describe_files(
    items: list[CaptionImage], limits: ImageLimits, roots: list[Path], batch: int
) -> list[FileCaption]:
    """In a describing process: each item read, checked, decoded (holding its pixels of the
    pool's budget) and described in turn, as the service prepares images for any engine,
    until the batch is given up."""
    if _SHARED is None:
        raise RuntimeError("a describing process receives what its pool shares as it starts")
    described = []
    for item in items:
        if _SHARED.gave_up(batch):
            break
        prepared = prepare_one(item, limits, roots, _SHARED.budget, PixelEngine.max_side)
        if isinstance(prepared, str):
            described.append(FileCaption(None, error=prepared))
        else:
            described.append(FileCaption(describe(prepared.image), sha256=prepared.sha256))
    return described


class PixelEngine:
    """CPU describer. Measuring is numpy on small arrays and Python, which hold the GIL most
    of the time, so it runs in `processes` processes of the engine's own, and so does the
    rest of a request's work on its files: reading, checking and decoding them
    (ReadsItsFiles). In the service's threads their Python share held that process's GIL,
    which capped one service at about one core's worth of requests whatever the cores
    (about 800 images a second on 16). Only paths (or sent bytes) cross to the processes,
    and captions come back."""

    max_side = 256

    def __init__(
        self,
        processes: int,
        *,
        decode_pixels: int,
        decode_wait_s: float,
        describe_run: DescribeRun = _describe_files,
    ):
        self._processes = processes
        self._batches = itertools.count(1)
        self._sharing = partial(_PoolShared.make, capacity=decode_pixels, wait_s=decode_wait_s)
        # What a describing process runs on a run of a batch (a module-level function: it is
        # pickled by name); tests give one that crashes on some image.
        self._describe_run = describe_run
        self._pool = self._describing_processes(processes)
        # Batches read again after a crash, at most `processes` at once: each in a process
        # (and a decode budget) of its own, so without a bound a crash amid hundreds of
        # requests in flight would start hundreds of processes, as a crafted file sent again
        # and again could make it do.
        self._isolations = PerLoop(partial(asyncio.Semaphore, processes))

    def _describing_processes(self, count: int) -> ReplaceablePool:
        # Their fork server imports this module (numpy, Pillow) once.
        return ReplaceablePool(count, [__name__], sharing=self._sharing, install=_receive)

    @property
    def decode_budget(self) -> PixelBudget | None:
        """The running pool's decode budget; None while no pool runs."""
        shared: _PoolShared | None = self._pool.shared
        return shared.budget if shared is not None else None

    def info(self, class_hint: bool = False) -> EngineInfo:
        # No prompt, so the class hint changes nothing: one identity either way.
        return EngineInfo(
            engine="pixel",
            model="pixel-statistics",
            prompt_version=PROMPT_VERSION,
            prompt="(no prompt: describes colour, light, contrast, texture and shape)",
            params={"analysis_side": 96},
        )

    async def caption_files(
        self, items: list[CaptionImage], limits: ImageLimits, roots: list[Path]
    ) -> list[FileCaption]:
        """The batch read, decoded and described in the describing processes, a run of at
        least LEAST_RUN images each; a run that fails, or the request's cancellation, gives
        up the batch: its other runs stop at their next image.

        A describing process that dies (a decoder crash, the kernel's out-of-memory killer)
        fails every run its pool held, of every request: each of those batches is then
        described again part by part in a process of its own (_isolating), so a crashing
        image costs only itself, and a new pool serves the next requests."""
        loop = asyncio.get_running_loop()
        batch = next(self._batches)
        describe_run = partial(self._describe_run, limits=limits, roots=roots, batch=batch)
        pool = None
        try:
            pool = await self._pool.running()
            runs = split_evenly(items, self._processes, LEAST_RUN)
            done = await run_all(*(loop.run_in_executor(pool, describe_run, run) for run in runs))
        except BrokenProcessPool:
            if pool is None:  # none could even start
                raise EngineUnavailable("the describing processes cannot start") from None
            if self._pool.replace(pool):
                metrics.DESCRIBING_PROCESS_DEATHS.inc()
                logger.warning(
                    "a describing process died (a decoder crash, or out of memory): the "
                    "batches it failed are read again part by part"
                )
            return await self._isolating(items, describe_run)
        except BaseException:
            # A pool's processes take runs the moment they are queued: cancelling their
            # futures stops nothing.
            if (shared := self._pool.shared) is not None:
                shared.give_up(batch)
            raise
        return [described for run in done for described in run]

    async def _isolating(
        self,
        items: list[CaptionImage],
        describe_run: Callable[[list[CaptionImage]], list[FileCaption]],
    ) -> list[FileCaption]:
        """The batch again, part by part in a process of its own (shared.processes.isolating):
        an image that ends that process twice is an error of its own (CRASHED), and the
        others are described. That process decodes within a budget of its own, so while
        batches are read this way (at most `processes` at once) each may hold one image's
        pixels beyond the pool's."""

        def crashed(item: CaptionImage, failed: BaseException) -> FileCaption:
            metrics.CRASHING_IMAGES.inc()
            logger.warning("image %r: %s", item.path or item.id, CRASHED)
            return FileCaption(None, error=CRASHED)

        try:
            async with self._isolations.get():
                alone = self._describing_processes(1)
                return await isolating(items, alone, describe_run, crashed)
        except BrokenProcessPool:
            raise EngineUnavailable("a describing process cannot start") from None

    async def check_health(self) -> None:
        return None

    async def close(self) -> None:
        await self._pool.close()
