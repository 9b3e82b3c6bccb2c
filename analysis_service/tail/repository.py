"""Every SQL query about rare subpopulations and their prompts."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import (
    Assignment,
    Attribute,
    Caption,
    Dimension,
    Image,
    TailPrompt,
)


def _tail(
    job_id: uuid.UUID, max_share: float, class_name: str | None, dimension: str | None
) -> Any:
    """The job's attributes below max_share of their class, `other` left out (it names no
    subpopulation one could ask a generator for); each with its stored prompt, if any."""
    query = (
        select(
            Attribute.id,
            Dimension.class_name,
            Dimension.name.label("dimension"),
            Attribute.name.label("attribute"),
            Attribute.size,
            Attribute.share,
            TailPrompt.prompt,
            TailPrompt.model,
        )
        .join(Dimension, Dimension.id == Attribute.dimension_id)
        .outerjoin(TailPrompt, TailPrompt.attribute_id == Attribute.id)
        .where(Attribute.job_id == job_id, Attribute.share < max_share, ~Attribute.is_other)
    )
    if class_name is not None:
        query = query.where(Dimension.class_name == class_name)
    if dimension is not None:
        query = query.where(Dimension.name == dimension)
    return query


def _rarest_first(query: Any) -> Any:
    return query.order_by(
        Attribute.share, Dimension.class_name, Dimension.position, Attribute.position, Attribute.id
    )


async def tail_page(
    session: AsyncSession,
    job_id: uuid.UUID,
    max_share: float,
    class_name: str | None,
    dimension: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """A page of the tail, rarest first, and how many attributes it has in all."""
    query = _tail(job_id, max_share, class_name, dimension)
    rows = await session.execute(_rarest_first(query).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return list(rows.all()), int(total or 0)


async def without_prompt(
    session: AsyncSession,
    job_id: uuid.UUID,
    max_share: float,
    class_name: str | None,
    dimension: str | None,
    limit: int,
) -> tuple[list[Row], int]:
    """The rarest `limit` tail attributes that have no prompt yet, and how many have none."""
    query = _tail(job_id, max_share, class_name, dimension).where(TailPrompt.prompt.is_(None))
    rows = await session.execute(_rarest_first(query).limit(limit))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return list(rows.all()), int(total or 0)


async def other_attributes(session: AsyncSession, attribute_ids: list[int]) -> dict[int, list[str]]:
    """For each attribute, the other values of its dimension (`other` left out), most common
    first."""
    mine = Attribute.__table__.alias("mine")
    rows = await session.execute(
        select(mine.c.id, Attribute.name)
        .join(Attribute, Attribute.dimension_id == mine.c.dimension_id)
        .where(mine.c.id.in_(attribute_ids), Attribute.id != mine.c.id, ~Attribute.is_other)
        .order_by(mine.c.id, Attribute.size.desc(), Attribute.position)
    )
    found: dict[int, list[str]] = {i: [] for i in attribute_ids}
    for attribute_id, name in rows:
        found[attribute_id].append(name)
    return found


async def store_prompt(
    session: AsyncSession, job_id: uuid.UUID, attribute_id: int, prompt: str, model: str
) -> None:
    """The attribute's prompt, replacing an earlier one."""
    stmt = insert(TailPrompt).values(
        attribute_id=attribute_id, job_id=job_id, prompt=prompt, model=model
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[TailPrompt.attribute_id],
            set_={
                "prompt": stmt.excluded.prompt,
                "model": stmt.excluded.model,
                "created_at": func.now(),
            },
        )
    )


async def example_captions(
    session: AsyncSession, attribute_ids: list[int], caption_key: str | None, each: int
) -> dict[int, list[str]]:
    """Up to `each` captions of every attribute's images (the first by image id)."""
    numbered = (
        select(
            Assignment.attribute_id,
            Caption.text,
            func.row_number()
            .over(partition_by=Assignment.attribute_id, order_by=Assignment.image_id)
            .label("n"),
        )
        .join(Image, Image.id == Assignment.image_id)
        .join(
            Caption,
            and_(Caption.content_hash == Image.content_hash, Caption.caption_key == caption_key),
        )
        .where(Assignment.attribute_id.in_(attribute_ids), Caption.text.is_not(None))
        .subquery()
    )
    rows = await session.execute(
        select(numbered.c.attribute_id, numbered.c.text)
        .where(numbered.c.n <= each)
        .order_by(numbered.c.attribute_id, numbered.c.n)
    )
    found: dict[int, list[str]] = {i: [] for i in attribute_ids}
    for attribute_id, caption in rows:
        found[attribute_id].append(caption)
    return found
