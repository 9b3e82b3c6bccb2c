"""Every SQL statement about datasets, their images and the images each job saw."""

from __future__ import annotations

import uuid
from dataclasses import asdict, fields
from typing import NamedTuple

from sqlalchemy import exists, select, text
from sqlalchemy.dialects.postgresql import distinct_on, insert
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


class KnownImage(NamedTuple):
    """The version of a file a scan compares with: the one the job already saw (a resumed
    scan), else the newest one of the dataset."""

    image: Image
    in_job: bool


async def known_images(
    session: AsyncSession, dataset_id: uuid.UUID, job_id: uuid.UUID, relpaths: list[str]
) -> dict[str, KnownImage]:
    in_job = exists().where(JobImage.job_id == job_id, JobImage.image_id == Image.id)
    rows = await session.execute(
        select(Image, in_job)
        .where(Image.dataset_id == dataset_id, Image.relpath.in_(relpaths))
        .ext(distinct_on(Image.relpath))
        .order_by(Image.relpath, in_job.desc(), Image.id.desc())
    )
    return {image.relpath: KnownImage(image, bool(linked)) for image, linked in rows}


def facts_of(image: Image) -> ScannedFile:
    """What a stored version says of its file."""
    return ScannedFile(**{f.name: getattr(image, f.name) for f in fields(ScannedFile)})


async def hold_dataset(session: AsyncSession, dataset_id: uuid.UUID, *, exclusive: bool) -> None:
    """Lock the dataset row for this transaction. A scan storing a batch holds it shared,
    a job deletion exclusively: the versions a scan decided to reuse cannot be deleted
    before the scan has linked them."""
    query = select(Dataset.id).where(Dataset.id == dataset_id)
    # Shared: FOR SHARE; exclusive: FOR NO KEY UPDATE, which still lets new jobs reference
    # the dataset.
    await session.execute(query.with_for_update(read=not exclusive, key_share=exclusive))


async def existing_images(session: AsyncSession, image_ids: list[int]) -> set[int]:
    """Those of the ids whose rows still exist."""
    if not image_ids:
        return set()
    return set(await session.scalars(select(Image.id).where(Image.id.in_(image_ids))))


async def insert_images(
    session: AsyncSession, dataset_id: uuid.UUID, files: list[ScannedFile]
) -> dict[str, int]:
    """New versions of files (rows are never updated: earlier jobs keep the versions they
    saw); return relpath -> image id."""
    if not files:
        return {}
    values = [{"dataset_id": dataset_id, **asdict(f)} for f in files]
    stmt = insert(Image).values(values).returning(Image.relpath, Image.id)
    return {relpath: image_id for relpath, image_id in (await session.execute(stmt)).all()}


async def add_job_images(session: AsyncSession, job_id: uuid.UUID, image_ids: list[int]) -> None:
    """Remember which images a job saw (once each)."""
    if image_ids:
        rows = [{"job_id": job_id, "image_id": image_id} for image_id in image_ids]
        await session.execute(insert(JobImage).values(rows).on_conflict_do_nothing())


async def link_versions(
    session: AsyncSession,
    dataset_id: uuid.UUID,
    job_id: uuid.UUID,
    changed: list[ScannedFile],
    reused: list[Image],
) -> None:
    """Store new versions of the changed files and link them and the reused known versions
    to the job. A reused version deleted since it was read (with the last job that used it)
    is stored again, with the same facts."""
    await hold_dataset(session, dataset_id, exclusive=False)
    still = await existing_images(session, [image.id for image in reused])
    changed = changed + [facts_of(image) for image in reused if image.id not in still]
    ids = list((await insert_images(session, dataset_id, changed)).values())
    await add_job_images(session, job_id, ids + [i.id for i in reused if i.id in still])


DELETE_UNSHARED_IMAGES = text(
    """
    DELETE FROM image i USING job_image ji
    WHERE ji.job_id = :job_id AND i.id = ji.image_id
      AND NOT EXISTS (SELECT 1 FROM job_image other
                      WHERE other.image_id = i.id AND other.job_id <> :job_id)
    """
)
"""The image rows (file versions) of a job that no other job saw; the job's links and
assignments to them go with them (ON DELETE CASCADE)."""


async def delete_unshared_images(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Call with the job's dataset held exclusively (hold_dataset): a running scan may have
    read a version to reuse that no job links yet."""
    await session.execute(DELETE_UNSHARED_IMAGES, {"job_id": job_id})


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
