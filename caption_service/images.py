"""Turning request items into RGB images ready for any engine, off the event loop."""

from __future__ import annotations

import asyncio
import base64
import binascii
from concurrent.futures import Executor
from pathlib import Path

from PIL import Image

from shared.caption_contract import CaptionImage
from shared.concurrency import run_all
from shared.imaging import ImageLimits, InvalidImage, load_rgb
from shared.paths import PathOutsideRoots, is_inside


def check_paths(items: list[CaptionImage], roots: list[Path]) -> None:
    """Refuse the whole request if any path leaves the data roots (symlinks followed)."""
    for item in items:
        if item.path is not None and not is_inside(Path(item.path).resolve(), roots):
            raise PathOutsideRoots(
                f"image '{item.id}': path is outside the allowed data roots (DATA_ROOTS)"
            )


def _read_bytes(item: CaptionImage, limits: ImageLimits) -> bytes:
    if item.data is not None:
        try:
            return base64.b64decode(item.data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage("'data' is not valid base64") from None
    path = Path(str(item.path)).resolve()
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise InvalidImage(f"file too large: {size} bytes > limit {limits.max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidImage("file not found") from None
    except IsADirectoryError:
        raise InvalidImage("path is a folder, not an image file") from None
    except PermissionError:
        raise InvalidImage("file is not readable (permission denied)") from None


def prepare_one(
    item: CaptionImage, limits: ImageLimits, max_side: int, short_side: int | None = None
) -> Image.Image | str:
    """An RGB image sized for the engine, or the reason it cannot be one."""
    try:
        return load_rgb(_read_bytes(item, limits), limits, max_side, short_side)
    except InvalidImage as exc:
        return str(exc)


async def prepare_all(
    items: list[CaptionImage],
    limits: ImageLimits,
    executor: Executor,
    max_side: int,
    short_side: int | None = None,
) -> list[Image.Image | str]:
    """Decode and resize every image in the pool, off the event loop. An unreadable image is
    its reason, not a failure; an unexpected error cancels the images still queued."""
    loop = asyncio.get_running_loop()
    jobs = [
        loop.run_in_executor(executor, prepare_one, it, limits, max_side, short_side)
        for it in items
    ]
    return await run_all(*jobs)
