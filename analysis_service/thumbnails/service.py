"""Thumbnails of images: found by id, checked against their file, served from the disk cache
or made in a bounded number of worker threads (never on the event loop)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.settings import AnalysisSettings
from analysis_service.thumbnails import render, repository
from analysis_service.thumbnails.cache import ThumbnailCache
from analysis_service.thumbnails.render import ScannedFile, UndecodableImage
from shared.errors import NotFound
from shared.processes import usable_cores


class ThumbnailSize(IntEnum):
    """The sizes made (the longest side, in pixels): few, so that the cache is shared."""

    TINY = 64
    SMALL = 128
    MEDIUM = 256
    LARGE = 512


class NoImageFile(NotFound):
    """The image has no file: it was imported from a captions file."""

    code = "no_image_file"


@dataclass(frozen=True)
class Wanted:
    """A thumbnail asked for: of which file (as scanned), at which size."""

    file: ScannedFile
    size: ThumbnailSize

    @property
    def etag(self) -> str:
        return f'"{self.file.content_hash}-{int(self.size)}"'


class Thumbnails:
    """The cache and the decode slots of one process."""

    def __init__(self, settings: AnalysisSettings):
        self.roots = settings.data_root_paths
        self.limits = settings.image_limits
        self.cache = ThumbnailCache(
            settings.state_dir / "thumbnails", settings.thumbnail_cache_bytes
        )
        # PIL decodes and encodes without the GIL: one decode per core keeps them all busy,
        # and a grid of cold thumbnails cannot take every thread of the pool.
        self._decodes = anyio.Semaphore(usable_cores())

    async def find(self, session: AsyncSession, image_id: int, size: ThumbnailSize) -> Wanted:
        """The image's file as its scan recorded it; the errors say why there is no thumbnail
        to make. The file itself is checked by `jpeg`."""
        found = await repository.image_file(session, image_id)
        if found is None:
            raise NotFound(f"image {image_id} not found")
        if found.invalid_reason is not None:
            raise UndecodableImage(f"image {image_id} cannot be shown: {found.invalid_reason}")
        if found.format is None or found.content_hash is None:
            # Only a scan records a format; images named by a captions file have none.
            raise NoImageFile(
                f"image {image_id} has no image file: it was imported from a captions file"
            )
        file = ScannedFile(
            Path(found.root_path) / found.relpath,
            found.relpath,
            found.size_bytes,
            found.mtime_ns,
            found.content_hash,
        )
        return Wanted(file, size)

    async def jpeg(self, wanted: Wanted, *, body: bool = True) -> bytes | None:
        """Check that the file is still the one scanned (inside the roots, same size and
        modification time: a stat, even when the thumbnail is cached), then its thumbnail:
        from the cache, else made (and cached). None when the body is not wanted (304)."""
        cached = await anyio.to_thread.run_sync(self._checked_and_cached, wanted, body)
        if cached is not None or not body:
            return cached
        # Not cancelled midway: a thread runs to its end, so the slot is held as long.
        async with self._decodes:
            return await anyio.to_thread.run_sync(self._made, wanted)

    def _checked_and_cached(self, wanted: Wanted, body: bool) -> bytes | None:
        render.check(wanted.file, self.roots)
        return self._cached(wanted) if body else None

    def _cached(self, wanted: Wanted) -> bytes | None:
        return self.cache.read(wanted.file.content_hash, wanted.size)

    def _made(self, wanted: Wanted) -> bytes:
        # Another request may have made it while this one waited for a slot.
        if (cached := self._cached(wanted)) is not None:
            return cached
        data = render.render(wanted.file, self.roots, self.limits, wanted.size)
        self.cache.write(wanted.file.content_hash, wanted.size, data)
        return data
