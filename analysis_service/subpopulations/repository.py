"""Every SQL query about discovered structure."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, and_, func, select
from sqlalchemy.ext.asyncio import AsyncResult, AsyncSession

from analysis_service.models import (
    Assignment,
    Attribute,
    Caption,
    Dimension,
    Image,
    Job,
    JobClass,
    JobImage,
)


def _subpopulation_query() -> Any:
    return (
        select(
            Attribute.id,
            Dimension.class_name,
            Dimension.name.label("dimension"),
            Attribute.name.label("attribute"),
            Attribute.is_other,
            Attribute.size,
            Attribute.share,
        )
        .join(Dimension, Dimension.id == Attribute.dimension_id)
        .order_by(Dimension.class_name, Dimension.position, Attribute.position)
    )


async def subpopulations(
    session: AsyncSession,
    job_id: uuid.UUID,
    class_name: str | None,
    dimension: str | None,
    min_size: int,
) -> list[Row]:
    query = _subpopulation_query().where(Attribute.job_id == job_id, Attribute.size >= min_size)
    if class_name is not None:
        query = query.where(Dimension.class_name == class_name)
    if dimension is not None:
        query = query.where(Dimension.name == dimension)
    return list((await session.execute(query)).all())


async def class_sizes(session: AsyncSession, job_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(JobClass.class_name, JobClass.images)
        .where(JobClass.job_id == job_id)
        .order_by(JobClass.class_name)
    )
    return {name: images for name, images in rows}


async def subpopulation_job(session: AsyncSession, attribute_id: int) -> Row | None:
    return (
        await session.execute(
            select(Attribute.job_id, Job.caption_key, Job.status, Attribute.size)
            .join(Job, Job.id == Attribute.job_id)
            .where(Attribute.id == attribute_id)
        )
    ).first()


def images_page(
    attribute_id: int, caption_key: str | None, limit: int, offset: int, after: int | None
) -> Any:
    """A page of the subpopulation's images by image id: those after an image id (keyset: the
    (attribute_id, image_id) index finds the page at any depth), less the first `offset`."""
    caption_join = and_(
        Caption.content_hash == Image.content_hash, Caption.caption_key == caption_key
    )
    query = (
        select(Assignment.image_id.label("id"), Image.relpath, Image.class_name, Caption.text)
        .join(Image, Image.id == Assignment.image_id)
        .outerjoin(Caption, caption_join)
        .where(Assignment.attribute_id == attribute_id)
        .order_by(Assignment.image_id)
        .limit(limit)
        .offset(offset or None)
    )
    return query if after is None else query.where(Assignment.image_id > after)


async def images_of(
    session: AsyncSession,
    attribute_id: int,
    caption_key: str | None,
    limit: int,
    offset: int = 0,
    after: int | None = None,
) -> list[Row]:
    query = images_page(attribute_id, caption_key, limit, offset, after)
    return list((await session.execute(query)).all())


async def count_images(session: AsyncSession, attribute_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.attribute_id == attribute_id)
        )
        or 0
    )


def _assignments(job_id: uuid.UUID) -> Any:
    """One row per image and dimension: path, class, dimension, attribute, note."""
    return (
        select(
            Image.relpath,
            Image.class_name,
            Dimension.name,
            Attribute.name,
            Assignment.note,
        )
        .join(Assignment, Assignment.image_id == Image.id)
        .join(Dimension, Dimension.id == Assignment.dimension_id)
        .join(Attribute, Attribute.id == Assignment.attribute_id)
        .where(Assignment.job_id == job_id)
        .order_by(Image.relpath, Dimension.position)
    )


async def stream_assignments(session: AsyncSession, job_id: uuid.UUID) -> AsyncResult:
    """Every assignment row of the job, fetched in chunks as they are read."""
    return await session.stream(_assignments(job_id).execution_options(yield_per=2000))


async def assignments_page(
    session: AsyncSession, job_id: uuid.UUID, limit: int | None, offset: int = 0
) -> list[Row]:
    """A page of the job's assignment rows (all of them with limit None)."""
    return list((await session.execute(_assignments(job_id).limit(limit).offset(offset))).all())


async def count_assignments(session: AsyncSession, job_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.job_id == job_id)
        )
        or 0
    )


async def class_names(session: AsyncSession, job_id: uuid.UUID) -> list[str]:
    """The classes of the job's valid images, by name."""
    rows = await session.scalars(
        select(Image.class_name)
        .join(JobImage, JobImage.image_id == Image.id)
        .where(
            JobImage.job_id == job_id,
            Image.class_name.is_not(None),
            Image.invalid_reason.is_(None),
        )
        .distinct()
        .order_by(Image.class_name)
    )
    return [name for name in rows if name is not None]
