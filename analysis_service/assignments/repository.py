"""Every SQL statement the discover and summarize stages run on the structure of each class
(its discovery state, dimensions and attributes) and on the images' assignments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.captions.repository import captioned, group_of
from analysis_service.models import Assignment, Attribute, Caption, Dimension, Image, JobClass
from analysis_service.reasoners.base import OTHER, DimensionProposal


class ClassProgress(NamedTuple):
    structured_at: datetime | None
    assigned_at: datetime | None


class Structure(NamedTuple):
    """A class's dimensions with their attributes ('other' left out), and the ids to store
    assignments under."""

    dimensions: list[DimensionProposal]
    dimension_ids: dict[str, int]
    attribute_ids: dict[tuple[str, str], int]


async def _class_row(session: AsyncSession, job_id: uuid.UUID, class_name: str) -> JobClass:
    """The class's discovery state, created on first use and locked for this transaction."""
    await session.execute(
        insert(JobClass).values(job_id=job_id, class_name=class_name).on_conflict_do_nothing()
    )
    return (
        await session.scalars(
            select(JobClass)
            .where(JobClass.job_id == job_id, JobClass.class_name == class_name)
            .with_for_update()
        )
    ).one()


async def class_progress(
    session: AsyncSession, job_id: uuid.UUID, class_name: str
) -> ClassProgress:
    """How far discovery got in a class (nowhere, for a class not recorded yet)."""
    row = (
        await session.execute(
            select(JobClass.structured_at, JobClass.assigned_at).where(
                JobClass.job_id == job_id, JobClass.class_name == class_name
            )
        )
    ).first()
    return ClassProgress(row[0], row[1]) if row is not None else ClassProgress(None, None)


async def record_classes(
    session: AsyncSession, job_id: uuid.UUID, sizes: list[tuple[str, int]]
) -> dict[str, ClassProgress]:
    """Store each class's image count; return how far discovery got in each."""
    progress = {}
    for class_name, images in sizes:
        row = await _class_row(session, job_id, class_name)
        row.images = images
        progress[class_name] = ClassProgress(row.structured_at, row.assigned_at)
    return progress


WRITE_STRUCTURE = text(
    """
    WITH dims AS (
        INSERT INTO dimension (job_id, class_name, name, position)
        SELECT :job_id, :class_name, d.name, d.n - 1
        FROM unnest(CAST(:dimensions AS text[])) WITH ORDINALITY AS d(name, n)
        RETURNING id, position
    )
    INSERT INTO attribute (dimension_id, job_id, name, position, is_other, size, share)
    SELECT dims.id, :job_id, a.name, a.position, a.name = :other, 0, 0
    FROM unnest(CAST(:of_dimension AS int[]), CAST(:attributes AS text[]),
                CAST(:positions AS int[])) AS a(dimension, name, position)
    JOIN dims ON dims.position = a.dimension
    """
)
"""A class's dimensions and their attributes in one statement: a class of twenty dimensions
took forty round trips, one per dimension and one per dimension's attributes."""


async def write_structure(
    session: AsyncSession,
    job_id: uuid.UUID,
    class_name: str,
    proposals: list[DimensionProposal],
) -> bool:
    """Store a class's dimensions and attributes (each dimension ends with 'other') and mark
    the class structured; False, writing nothing, when another attempt already did."""
    state = await _class_row(session, job_id, class_name)
    if state.structured_at is not None:
        return False
    of_dimension: list[int] = []
    attributes: list[str] = []
    positions: list[int] = []
    for d_pos, proposal in enumerate(proposals):
        names = [a for a in dict.fromkeys(proposal.attributes) if a != OTHER] + [OTHER]
        of_dimension += [d_pos] * len(names)
        attributes += names
        positions += range(len(names))
    if proposals:
        params = {
            "job_id": job_id,
            "class_name": class_name,
            "dimensions": [proposal.name for proposal in proposals],
            "of_dimension": of_dimension,
            "attributes": attributes,
            "positions": positions,
            "other": OTHER,
        }
        await session.execute(WRITE_STRUCTURE, params)
    state.structured_at = func.now()
    return True


async def mark_assigned(session: AsyncSession, job_id: uuid.UUID, class_name: str) -> None:
    await session.execute(
        update(JobClass)
        .where(JobClass.job_id == job_id, JobClass.class_name == class_name)
        .values(assigned_at=func.now())
    )


async def structure(session: AsyncSession, job_id: uuid.UUID, class_name: str) -> Structure:
    rows = await session.execute(
        select(Dimension.id, Dimension.name, Attribute.id, Attribute.name, Attribute.is_other)
        .join(Attribute, Attribute.dimension_id == Dimension.id)
        .where(Dimension.job_id == job_id, Dimension.class_name == class_name)
        .order_by(Dimension.position, Attribute.position)
    )
    found = Structure([], {}, {})
    by_name: dict[str, DimensionProposal] = {}
    for dim_id, dim_name, attr_id, attr_name, is_other in rows:
        if dim_name not in by_name:
            by_name[dim_name] = DimensionProposal(dim_name)
            found.dimensions.append(by_name[dim_name])
        found.dimension_ids[dim_name] = dim_id
        found.attribute_ids[(dim_name, attr_name)] = attr_id
        if not is_other:
            by_name[dim_name].attributes.append(attr_name)
    return found


async def unassigned_page(
    session: AsyncSession,
    job_id: uuid.UUID,
    group: str,
    pooled: bool,
    after: int,
    limit: int,
) -> list[tuple[int, str]]:
    """A group's next captioned images without assignments, after an image id."""
    assigned = exists().where(Assignment.job_id == job_id, Assignment.image_id == Image.id)
    query = (
        captioned(job_id, Image.id, Caption.text)
        .where(group_of(pooled) == group, Image.id > after, ~assigned)
        .order_by(Image.id)
        .limit(limit)
    )
    return [(int(image_id), caption) for image_id, caption in await session.execute(query)]


INSERT_ASSIGNMENTS = text(
    """
    INSERT INTO assignment (job_id, image_id, dimension_id, attribute_id, note)
    SELECT * FROM unnest(CAST(:job_id AS uuid[]), CAST(:image_id AS bigint[]),
                         CAST(:dimension_id AS bigint[]), CAST(:attribute_id AS bigint[]),
                         CAST(:note AS text[]))
    ON CONFLICT DO NOTHING
    """
)
"""A page of assignments as five arrays: a multi-row VALUES of thousands of rows costs more
to compile than to run."""


async def insert_assignments(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Rows of job_id, image_id, dimension_id, attribute_id and note; an image already assigned
    in a dimension keeps its first answer."""
    if rows:
        columns = ("job_id", "image_id", "dimension_id", "attribute_id", "note")
        await session.execute(INSERT_ASSIGNMENTS, {c: [r[c] for r in rows] for c in columns})


UPDATE_SIZES = text(
    """
    UPDATE attribute a SET size = s.size,
           share = CASE WHEN jc.images > 0 THEN s.size::float / jc.images ELSE 0 END
    FROM (
        SELECT at.id, count(asg.image_id) AS size
        FROM attribute at LEFT JOIN assignment asg ON asg.attribute_id = at.id
        WHERE at.job_id = :job_id GROUP BY at.id
    ) s, dimension d, job_class jc
    WHERE a.id = s.id AND d.id = a.dimension_id
      AND jc.job_id = d.job_id AND jc.class_name = d.class_name
    """
)
"""Every attribute's size and its share of its class's images, from the assignments."""


ANALYZE_ASSIGNMENTS = text("ANALYZE assignment")


async def analyze_assignments(session: AsyncSession) -> None:
    """After discovery wrote a job's assignments: sizes, slices, groups and exports aggregate
    over them next, and a table the planner takes for nearly empty gets nested loops."""
    await session.execute(ANALYZE_ASSIGNMENTS)


async def update_sizes(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.execute(UPDATE_SIZES, {"job_id": job_id})
