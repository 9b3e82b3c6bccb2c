"""Every SQL query about discovered structure."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Integer, Row, and_, bindparam, func, select, tuple_
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

#: The order of subpopulations, and the key of a page's last one (its cursor): class, then
#: the dimensions and attributes in the order discovery gave them.
SUBPOPULATION_ORDER = (Dimension.class_name, Dimension.position, Attribute.position, Attribute.id)
SUBPOPULATION_KEY = (str, int, int, int)
#: The part of that order a dimension holds: the (job_id, class_name, position) index gives the
#: job's dimensions in it, so a page walks the index from its cursor and sorts only the few
#: attributes of each dimension it reaches, where filtering attributes by job sorted all of a
#: 1000-class job's 15,000 per page.
_DIMENSION_ORDER = SUBPOPULATION_ORDER[:2]


#: The cursor's fields as bound parameters, in SUBPOPULATION_ORDER.
_AFTER = tuple(
    bindparam(f"after_{n}", type_=c.type)
    for n, c in zip(
        ("class_name", "dimension_position", "position", "id"), SUBPOPULATION_ORDER, strict=True
    )
)


@functools.cache
def _subpopulations_query(by_class: bool, by_dimension: bool, after: bool, limited: bool) -> Any:
    """The listing's statement for a choice of filters, with their values bound at execution:
    built once, since building and keying a statement costs the API more CPU than the
    database spends running it."""
    query = (
        select(
            Attribute.id,
            Dimension.class_name,
            Dimension.name.label("dimension"),
            Attribute.name.label("attribute"),
            Attribute.is_other,
            Attribute.size,
            Attribute.share,
            Dimension.position.label("dimension_position"),
            Attribute.position,
        )
        .select_from(Dimension)
        .join(Attribute, Attribute.dimension_id == Dimension.id)
        .where(Dimension.job_id == bindparam("job_id"), Attribute.size >= bindparam("min_size"))
        .order_by(*SUBPOPULATION_ORDER)
    )
    if limited:
        query = query.limit(bindparam("limit", type_=Integer))
    if by_class:
        query = query.where(Dimension.class_name == bindparam("class_name"))
    if by_dimension:
        query = query.where(Dimension.name == bindparam("dimension"))
    if after:
        # Implied by the whole key's bound, and on the index's columns alone: where the walk
        # starts. The whole key then drops the rows of that dimension up to the cursor.
        query = query.where(
            tuple_(*_DIMENSION_ORDER) >= tuple_(*_AFTER[:2]),
            tuple_(*SUBPOPULATION_ORDER) > tuple_(*_AFTER),
        )
    return query


async def subpopulations(
    session: AsyncSession,
    job_id: uuid.UUID,
    class_name: str | None,
    dimension: str | None,
    min_size: int,
    limit: int | None = None,
    after: tuple | None = None,
) -> list[Row]:
    """The job's subpopulations in SUBPOPULATION_ORDER, from after that key, at most limit;
    each row ends with its key (class_name, dimension_position, position, id)."""
    query = _subpopulations_query(
        class_name is not None, dimension is not None, after is not None, limit is not None
    )
    params: dict[str, Any] = {"job_id": job_id, "min_size": min_size}
    if limit is not None:
        params["limit"] = limit
    if class_name is not None:
        params["class_name"] = class_name
    if dimension is not None:
        params["dimension"] = dimension
    if after is not None:
        params |= {p.key: value for p, value in zip(_AFTER, after, strict=True)}
    return list((await session.execute(query, params)).all())


async def class_sizes(
    session: AsyncSession, job_id: uuid.UUID, class_name: str | None = None
) -> dict[str, int]:
    """Images of each class of the job (of that one class only, given one), by name."""
    query = select(JobClass.class_name, JobClass.images).where(JobClass.job_id == job_id)
    if class_name is not None:
        query = query.where(JobClass.class_name == class_name)
    return {
        name: images for name, images in await session.execute(query.order_by(JobClass.class_name))
    }


_SUBPOPULATION_JOB = (
    select(Attribute.job_id, Job.caption_key, Job.status, Attribute.size)
    .join(Job, Job.id == Attribute.job_id)
    .where(Attribute.id == bindparam("attribute_id"))
)


async def subpopulation_job(session: AsyncSession, attribute_id: int) -> Row | None:
    return (await session.execute(_SUBPOPULATION_JOB, {"attribute_id": attribute_id})).first()


#: The order of a subpopulation's images and their cursor: the image id, as the
#: (attribute_id, image_id) index holds them.
IMAGE_KEY = (int,)


@functools.cache
def _images_query(by_offset: bool, after: bool) -> Any:
    """A page of a subpopulation's images by image id: those after an image id (keyset: the
    (attribute_id, image_id) index finds the page at any depth), less the first `offset`.
    The page's ids are chosen from that index alone, and only they are joined to their paths
    and captions: rows skipped by an offset cost an index entry each, not two lookups. Built
    once for each choice (see _subpopulations_query)."""
    page = (
        select(Assignment.image_id)
        .where(Assignment.attribute_id == bindparam("attribute_id"))
        .order_by(Assignment.image_id)
        .limit(bindparam("limit", type_=Integer))
    )
    if by_offset:
        page = page.offset(bindparam("offset", type_=Integer))
    if after:
        page = page.where(Assignment.image_id > bindparam("after"))
    ids = page.subquery("page")
    caption_join = and_(
        Caption.content_hash == Image.content_hash,
        Caption.caption_key == bindparam("caption_key"),
    )
    return (
        select(ids.c.image_id.label("id"), Image.relpath, Image.class_name, Caption.text)
        .join(Image, Image.id == ids.c.image_id)
        .outerjoin(Caption, caption_join)
        .order_by(ids.c.image_id)
    )


async def images_of(
    session: AsyncSession,
    attribute_id: int,
    caption_key: str | None,
    limit: int,
    offset: int = 0,
    after: tuple | None = None,
) -> list[Row]:
    query = _images_query(offset > 0, after is not None)
    params: dict[str, Any] = {"attribute_id": attribute_id, "caption_key": caption_key}
    params |= {"limit": limit, "offset": offset} | ({} if after is None else {"after": after[0]})
    return list((await session.execute(query, params)).all())


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
    """A page of the job's assignment rows in path order (all of them with limit None)."""
    return list((await session.execute(_assignments(job_id).limit(limit).offset(offset))).all())


#: The order of the API's JSON assignment pages and their cursor: image, then dimension, as
#: the assignment table's primary key (job, image, dimension) holds them, so a page is a range
#: of that index wherever it starts, where path order sorts every row of the job per page.
ASSIGNMENT_KEY = (int, int)


async def assignments_keyset_page(
    session: AsyncSession, job_id: uuid.UUID, limit: int, offset: int, after: tuple | None
) -> list[Row]:
    """A page of the job's assignment rows in image, dimension order, from after that key
    (image id, dimension id) or offset; each row ends with its key."""
    query = (
        _assignments(job_id)
        .add_columns(Assignment.image_id, Assignment.dimension_id)
        .order_by(None)
        .order_by(Assignment.image_id, Assignment.dimension_id)
        .limit(limit)
        .offset(offset)
    )
    if after is not None:
        query = query.where(tuple_(Assignment.image_id, Assignment.dimension_id) > tuple_(*after))
    return list((await session.execute(query)).all())


async def count_assignments(session: AsyncSession, job_id: uuid.UUID) -> int:
    """Assignment rows of a finished job: the sum of its attributes' sizes, which are counted
    from the assignments when they are written, so a page does not count millions of rows."""
    return int(
        await session.scalar(
            select(func.coalesce(func.sum(Attribute.size), 0)).where(Attribute.job_id == job_id)
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
