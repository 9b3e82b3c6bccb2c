"""Making a thumbnail from the file a scan saw: blocking work, run in worker threads.

The file is opened through shared.files (inside DATA_ROOTS, no symlink swapped in, a regular
file) and must still be what the scan recorded: the same size and modification time, and,
when its bytes are read, the same content hash. Anything else is an error, never a
thumbnail of other bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from shared.errors import Forbidden, Gone, InvalidRequest, NotFound
from shared.files import OUTSIDE_ROOTS, MissingFile, UnreadableFile, open_inside_roots
from shared.imaging import ImageLimits, InvalidImage, open_image, rgb_of

JPEG_QUALITY = 80


class FileGone(NotFound):
    """The image's file is gone."""

    code = "file_gone"


class FileChanged(Gone):
    """The image's file changed since it was scanned."""

    code = "file_changed"


class UndecodableImage(InvalidRequest):
    """The image cannot be decoded."""

    code = "invalid_image"


@dataclass(frozen=True)
class ScannedFile:
    """Where an image's file is and what its scan recorded of it."""

    path: Path
    relpath: str
    size_bytes: int
    mtime_ns: int
    content_hash: str


def _refused(exc: UnreadableFile, relpath: str) -> Exception:
    if str(exc) == OUTSIDE_ROOTS:
        return Forbidden(f"image file '{relpath}' is outside the data roots (DATA_ROOTS) now")
    if isinstance(exc, MissingFile):
        return FileGone(f"image file '{relpath}' is gone: it was moved or deleted since the scan")
    # It was a readable regular file when scanned: a folder, a FIFO or lost permissions now.
    return FileChanged(f"image file '{relpath}' changed since it was scanned: {exc}")


@contextmanager
def opened_as_scanned(file: ScannedFile, roots: list[Path]) -> Iterator[BinaryIO]:
    """The file, open, if its size and modification time are those the scan recorded."""
    try:
        opened = open_inside_roots(file.path, roots)
    except UnreadableFile as exc:
        raise _refused(exc, file.relpath) from None
    with opened:
        st = os.fstat(opened.fileno())
        if (st.st_size, st.st_mtime_ns) != (file.size_bytes, file.mtime_ns):
            raise FileChanged(
                f"image file '{file.relpath}' changed since it was scanned "
                f"(its size or modification time differs); run a new job to see it"
            )
        yield opened


def check(file: ScannedFile, roots: list[Path]) -> None:
    """Raise as opened_as_scanned does; read nothing (the cost of a cached thumbnail)."""
    with opened_as_scanned(file, roots):
        pass


def _scanned_bytes(file: ScannedFile, roots: list[Path]) -> bytes:
    with opened_as_scanned(file, roots) as opened:
        data = opened.read(file.size_bytes + 1)
    if hashlib.sha256(data).hexdigest() != file.content_hash:
        raise FileChanged(
            f"image file '{file.relpath}' changed since it was scanned (its content differs); "
            f"run a new job to see it"
        )
    return data


def _draft(image: Image.Image, size: int) -> None:
    """Have a JPEG decoded at the smallest of 1/2 to 1/8 scale that still covers the
    thumbnail. The box is the one the thumbnail fills, not size x size: a 640x480 photo
    decodes at 320x240 for 256x192. (rgb_of's own square box would decode it whole; a second
    draft call is ignored.)"""
    longest = max(image.size)
    if image.format == "JPEG" and longest > size:
        box = (max(1, image.width * size // longest), max(1, image.height * size // longest))
        image.draft("RGB", box)


def render(file: ScannedFile, roots: list[Path], limits: ImageLimits, size: int) -> bytes:
    """A JPEG of the scanned bytes, EXIF-oriented, fitting size x size (never enlarged)."""
    data = _scanned_bytes(file, roots)
    try:
        image = open_image(data, limits)
        _draft(image, size)
        image = rgb_of(image, max_side=size)
    except InvalidImage as exc:
        raise UndecodableImage(f"image '{file.relpath}' cannot be shown: {exc}") from None
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
