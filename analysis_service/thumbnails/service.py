"""Thumbnails of images: found by id, checked against their file, served from the disk cache
or made in a bounded number of worker threads (never on the event loop)."""

from __future__ import annotations

import os
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
class Checked:
    """An image whose file is still the one its scan saw, and the thumbnail asked of it."""

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
        self._decodes = anyio.Semaphore(os.cpu_count() or 2)

    async def check(self, session: AsyncSession, image_id: int, size: ThumbnailSize) -> Checked:
        """The image's file as scanned, checked on disk (inside the roots, same size and
        modification time); the errors say why there is no thumbnail."""
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
        await anyio.to_thread.run_sync(render.check, file, self.roots)
        return Checked(file, size)

    async def jpeg(self, checked: Checked) -> bytes:
        """The thumbnail's bytes: from the cache, else made (and cached)."""
        cached = await anyio.to_thread.run_sync(self._cached, checked)
        if cached is not None:
            return cached
        # Not cancelled midway: a thread runs to its end, so the slot is held as long.
        async with self._decodes:
            return await anyio.to_thread.run_sync(self._made, checked)

    def _cached(self, checked: Checked) -> bytes | None:
        return self.cache.read(checked.file.content_hash, checked.size)

    def _made(self, checked: Checked) -> bytes:
        # Another request may have made it while this one waited for a slot.
        if (cached := self._cached(checked)) is not None:
            return cached
        data = render.render(checked.file, self.roots, self.limits, checked.size)
        self.cache.write(checked.file.content_hash, checked.size, data)
        return data
