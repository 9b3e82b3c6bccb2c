"""Every SQL statement about datasets, their images and the images each job saw."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.datasets.scanner import ScannedFile
from analysis_service.models import Dataset, Image, JobImage


async def get_or_create_dataset(session: AsyncSession, root_path: str) -> uuid.UUID:
    stmt = (
        insert(Dataset)
        .values(id=uuid.uuid4(), root_path=root_path)
        .on_conflict_do_nothing(index_elements=["root_path"])
    )
    await session.execute(stmt)
    return (
        await session.execute(select(Dataset.id).where(Dataset.root_path == root_path))
    ).scalar_one()


async def known_images(
    session: AsyncSession, dataset_id: uuid.UUID, relpaths: list[str]
) -> dict[str, Image]:
    rows = await session.execute(
        select(Image).where(Image.dataset_id == dataset_id, Image.relpath.in_(relpaths))
    )
    return {img.relpath: img for img in rows.scalars()}


async def upsert_images(
    session: AsyncSession, dataset_id: uuid.UUID, files: list[ScannedFile]
) -> dict[str, int]:
    """Insert or refresh image rows; return relpath -> image id."""
    if not files:
        return {}
    values = [{"dataset_id": dataset_id, **asdict(f)} for f in files]
    stmt = insert(Image).values(values)
    upsert = stmt.on_conflict_do_update(
        index_elements=["dataset_id", "relpath"],
        set_={
            col: stmt.excluded[col]
            for col in (
                "class_name",
                "size_bytes",
                "mtime_ns",
                "content_hash",
                "width",
                "height",
                "format",
                "invalid_reason",
            )
        },
    ).returning(Image.relpath, Image.id)
    return {relpath: image_id for relpath, image_id in (await session.execute(upsert)).all()}


async def add_job_images(session: AsyncSession, job_id: uuid.UUID, image_ids: list[int]) -> None:
    """Remember which images a job saw (once each)."""
    if image_ids:
        rows = [{"job_id": job_id, "image_id": image_id} for image_id in image_ids]
        await session.execute(insert(JobImage).values(rows).on_conflict_do_nothing())


async def root_path(session: AsyncSession, dataset_id: uuid.UUID) -> str:
    """The folder (or captions file) a dataset was registered by."""
    return (
        await session.execute(select(Dataset.root_path).where(Dataset.id == dataset_id))
    ).scalar_one()


ANALYZE_IMAGES = text("ANALYZE image, job_image")
"""Refresh the planner's statistics of the image tables."""


async def analyze_images(session: AsyncSession) -> None:
    """After a stage added many images: until autovacuum gets to it, the planner would take the
    tables for nearly empty and pick nested loops that cost seconds per page on a new job."""
    await session.execute(ANALYZE_IMAGES)
