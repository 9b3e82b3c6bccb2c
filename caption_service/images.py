"""Turning request items into RGB images ready for any engine, off the event loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PIL import Image

from caption_service.pixel_budget import PixelBudget
from shared.caption_contract import CaptionImage
from shared.concurrency import run_all, split_evenly
from shared.files import UnreadableFile, is_inside, read_inside_roots
from shared.imaging import ImageLimits, InvalidImage, open_image, rgb_of
from shared.paths import PathOutsideRoots


def _outside(item: CaptionImage, roots: list[Path]) -> bool:
    if item.path is None:
        return False
    try:
        return not is_inside(Path(item.path).resolve(), roots)
    except (OSError, RuntimeError, ValueError):
        return False  # unresolvable: that image's own error, when it is read


def check_paths(items: list[CaptionImage], roots: list[Path]) -> None:
    """Refuse a request whose every path leaves the data roots (symlinks followed); when only
    some do, those images get an error of their own. It resolves paths: run it in a thread."""
    if items and all(_outside(item, roots) for item in items):
        raise PathOutsideRoots("every image path is outside the allowed data roots (DATA_ROOTS)")


def _read_bytes(item: CaptionImage, limits: ImageLimits, roots: list[Path]) -> bytes:
    if item.data is not None:
        # Refused before decoding: a request's worth of base64 is not decoded to be thrown away.
        if (decoded := len(item.data) // 4 * 3) > limits.max_bytes + 3:
            raise InvalidImage(f"file too large: about {decoded} bytes > limit {limits.max_bytes}")
        try:
            return base64.b64decode(item.data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage("'data' is not valid base64") from None
    try:
        return read_inside_roots(Path(str(item.path)), roots, limits.max_bytes)
    except UnreadableFile as exc:
        raise InvalidImage(str(exc)) from None


@dataclass(frozen=True)
class PreparedImage:
    image: Image.Image  # RGB, sized for the engine
    sha256: str  # of the bytes it was decoded from: what the caption is the caption of


def prepare_one(
    item: CaptionImage,
    limits: ImageLimits,
    roots: list[Path],
    budget: PixelBudget,
    max_side: int,
    short_side: int | None = None,
) -> PreparedImage | str:
    """An RGB image sized for the engine, or the reason it cannot be one. It is decoded
    holding its pixels of the shared budget (DecoderBusy when they stay taken)."""
    try:
        data = _read_bytes(item, limits, roots)
        opened = open_image(data, limits)
        with budget.hold(opened.width * opened.height):
            image = rgb_of(opened, max_side, short_side)
    except InvalidImage as exc:
        return str(exc)
    return PreparedImage(image, hashlib.sha256(data).hexdigest())


def _prepare_run(
    items: list[CaptionImage],
    stop: threading.Event,
    limits: ImageLimits,
    roots: list[Path],
    budget: PixelBudget,
    max_side: int,
    short_side: int | None,
) -> list[PreparedImage | str]:
    """prepare_one for each item in turn, in one pool thread; once `stop` is set (the batch
    failed or was cancelled) the rest are not decoded."""
    prepared: list[PreparedImage | str] = []
    for item in items:
        if stop.is_set():
            break
        prepared.append(prepare_one(item, limits, roots, budget, max_side, short_side))
    return prepared


async def prepare_all(
    items: list[CaptionImage],
    limits: ImageLimits,
    roots: list[Path],
    budget: PixelBudget,
    executor: Executor,
    workers: int,
    max_side: int,
    short_side: int | None = None,
) -> list[PreparedImage | str]:
    """Decode and resize every image in the pool, off the event loop: one run of images per
    pool thread (`workers`), so a batch costs the loop a few hand-offs rather than one per
    image. An unreadable image is its reason, not a failure; an unexpected error (DecoderBusy
    too), or the request's cancellation, stops the images not decoded yet."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    prepare = partial(
        _prepare_run,
        stop=stop,
        limits=limits,
        roots=roots,
        budget=budget,
        max_side=max_side,
        short_side=short_side,
    )
    try:
        runs = await run_all(
            *(loop.run_in_executor(executor, prepare, run) for run in split_evenly(items, workers))
        )
    finally:
        stop.set()
    return [prepared for run in runs for prepared in run]
