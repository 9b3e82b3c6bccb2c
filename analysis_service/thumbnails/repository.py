"""Every SQL statement of thumbnails: what the scan recorded of an image's file."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Dataset, Image


class ImageFile(NamedTuple):
    """An image version as its scan saw it, and the folder (or captions file) of its dataset."""

    root_path: str
    relpath: str
    size_bytes: int
    mtime_ns: int
    content_hash: str | None
    format: str | None
    invalid_reason: str | None


async def image_file(session: AsyncSession, image_id: int) -> ImageFile | None:
    row = (
        await session.execute(
            select(
                Dataset.root_path,
                Image.relpath,
                Image.size_bytes,
                Image.mtime_ns,
                Image.content_hash,
                Image.format,
                Image.invalid_reason,
            )
            .join(Dataset, Dataset.id == Image.dataset_id)
            .where(Image.id == image_id)
        )
    ).one_or_none()
    return ImageFile(*row) if row is not None else None
