"""Every SQL statement of exports. A job's images are read a page at a time in image order, and
each page's attributes and predictions by range scans of the same image ids on their (job,
image) indexes: no per-image subquery and no JSON to decode. Pages are ranges of image ids
counted out once: a range's plan stays short even when the planner has no statistics of
freshly written tables (taken for empty, a LIMIT page was planned as a sort of every image
after it, for every page)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PAGE_ENDS = text(
    """
    SELECT image_id FROM (
        SELECT image_id, row_number() OVER (ORDER BY image_id) AS n, count(*) OVER () AS total
        FROM job_image WHERE job_id = :job_id
    ) ranked
    WHERE n % :size = 0 OR n = total
    ORDER BY image_id
    """
)
IMAGE_PAGE = text(
    """
    SELECT i.id, i.relpath, i.class_name, c.text
    FROM job_image ji
    JOIN image i ON i.id = ji.image_id
    LEFT JOIN caption c ON c.content_hash = i.content_hash AND c.caption_key = :caption_key
    WHERE ji.job_id = :job_id AND ji.image_id > :after AND ji.image_id <= :last
        -- Said of both tables, so that either scan is a range.
        AND i.id > :after AND i.id <= :last
        AND i.invalid_reason IS NULL AND ji.caption_error IS NULL
    ORDER BY ji.image_id
    """
)
ATTRIBUTE_NAMES = text(
    """
    SELECT t.id, d.name, t.name FROM attribute t JOIN dimension d ON d.id = t.dimension_id
    WHERE t.job_id = :job_id
    """
)
ASSIGNMENTS = text(
    """
    SELECT image_id, attribute_id FROM assignment
    WHERE job_id = :job_id AND image_id BETWEEN :first AND :last
    """
)
PREDICTIONS = text(
    """
    SELECT image_id, set_id, prediction, correct FROM prediction
    WHERE job_id = :job_id AND image_id BETWEEN :first AND :last AND set_id = ANY(:set_ids)
    """
)

ImageRow = tuple[int, str, str | None, str | None]


async def snapshot(session: AsyncSession) -> None:
    """Read the rest of the request from one snapshot: an export is many page queries, and a
    job deleted while it streams must not cut it short. The request's transaction, which has
    only read, is ended first: an isolation level holds from a transaction's start."""
    await session.commit()
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def attribute_names(session: AsyncSession, job_id: uuid.UUID) -> dict[int, tuple[str, str]]:
    """Each attribute of the job by id: (its dimension's name, its name)."""
    rows = await session.execute(ATTRIBUTE_NAMES, {"job_id": job_id})
    return {attribute_id: (dimension, name) for attribute_id, dimension, name in rows}


async def page_ends(session: AsyncSession, job_id: uuid.UUID, size: int) -> list[int]:
    """The last image id of each run of `size` of the job's images, in image order."""
    rows = await session.scalars(PAGE_ENDS, {"job_id": job_id, "size": size})
    return list(rows)


async def image_page(
    session: AsyncSession, job_id: uuid.UUID, caption_key: str | None, after: int, last: int
) -> list[ImageRow]:
    """The exported images with ids after `after` up to `last`: (id, path, class, caption)."""
    params = {"job_id": job_id, "caption_key": caption_key, "after": after, "last": last}
    rows = await session.execute(IMAGE_PAGE, params)
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def assignments_between(
    session: AsyncSession, job_id: uuid.UUID, first: int, last: int
) -> list[tuple[int, int]]:
    """(image id, attribute id) of the job's assignments of images first..last."""
    rows = await session.execute(ASSIGNMENTS, {"job_id": job_id, "first": first, "last": last})
    return [(r[0], r[1]) for r in rows]


async def predictions_between(
    session: AsyncSession, job_id: uuid.UUID, set_ids: list[int], first: int, last: int
) -> list[tuple[int, int, str, bool]]:
    """(image id, set id, prediction, correct) of those sets for images first..last."""
    params = {"job_id": job_id, "set_ids": set_ids, "first": first, "last": last}
    rows = await session.execute(PREDICTIONS, params)
    return [(r[0], r[1], r[2], r[3]) for r in rows]
