"""Every SQL statement of group labels: each image's attribute in one dimension."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncResult, AsyncSession

# One row per image of the classes asked: id, path, class, attribute in the dimension, and
# the split its predictions gave (when a set is named).
_GROUP_ROWS = """
    SELECT i.id, i.relpath, i.class_name, t.name, p.split
    FROM assignment a
    JOIN dimension d ON d.id = a.dimension_id AND d.name = :dimension
    JOIN attribute t ON t.id = a.attribute_id
    JOIN image i ON i.id = a.image_id
    LEFT JOIN prediction p ON p.set_id = :set_id AND p.job_id = a.job_id
        AND p.image_id = a.image_id
    WHERE a.job_id = :job_id AND i.class_name = ANY(:classes) AND a.image_id > :after
    ORDER BY a.image_id
"""


def _params(
    job_id: uuid.UUID, dimension: str, classes: list[str], set_id: int | None, after: int
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "dimension": dimension,
        "classes": classes,
        "set_id": set_id,
        "after": after,
    }


async def group_page(
    session: AsyncSession,
    job_id: uuid.UUID,
    dimension: str,
    classes: list[str],
    set_id: int | None,
    after: int,
    limit: int,
) -> list[Any]:
    query = text(_GROUP_ROWS + " LIMIT :limit")
    params = _params(job_id, dimension, classes, set_id, after) | {"limit": limit}
    return list((await session.execute(query, params)).all())


async def stream_groups(
    session: AsyncSession,
    job_id: uuid.UUID,
    dimension: str,
    classes: list[str],
    set_id: int | None,
) -> AsyncResult:
    """Every row, fetched in chunks as they are read."""
    query = text(_GROUP_ROWS).execution_options(yield_per=5000)
    return await session.stream(query, _params(job_id, dimension, classes, set_id, 0))
