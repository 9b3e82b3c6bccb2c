"""Every SQL statement of slices: error counts per class, per attribute and per pair of
attributes of two dimensions, and the images of one slice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# An image's slice class is its true class (the set's label). Only images with assignments
# count: the rest of a class is the images a slice could have held.
_PREDICTED = """
    prediction p
    JOIN assignment a1 ON a1.job_id = p.job_id AND a1.image_id = p.image_id
    JOIN dimension d1 ON d1.id = a1.dimension_id
    JOIN attribute t1 ON t1.id = a1.attribute_id
"""
_CLASS = "(CAST(:class_name AS text) IS NULL OR p.label = :class_name)"
#: class, conditions ((dimension, attribute), one or two), images, errors
SliceCount = tuple[str, tuple[tuple[str, str], ...], int, int]
CLASS_COUNTS = text(
    f"""
    SELECT p.label, count(*), count(*) FILTER (WHERE NOT p.correct)
    FROM prediction p
    WHERE p.set_id = :set_id AND {_CLASS}
      AND EXISTS (SELECT 1 FROM assignment a WHERE a.job_id = p.job_id AND a.image_id = p.image_id)
    GROUP BY p.label
    """
)
SINGLE_COUNTS = text(
    f"""
    SELECT p.label, d1.name, t1.name, count(*), count(*) FILTER (WHERE NOT p.correct)
    FROM {_PREDICTED}
    WHERE p.set_id = :set_id AND {_CLASS}
    GROUP BY p.label, d1.name, t1.name
    HAVING count(*) >= :min_size
    """
)
# Pairs: the same image's assignments in two dimensions, each unordered pair once.
PAIR_COUNTS = text(
    f"""
    SELECT p.label, d1.name, t1.name, d2.name, t2.name,
           count(*), count(*) FILTER (WHERE NOT p.correct)
    FROM {_PREDICTED}
    JOIN assignment a2 ON a2.job_id = a1.job_id AND a2.image_id = a1.image_id
        AND a2.dimension_id > a1.dimension_id
    JOIN dimension d2 ON d2.id = a2.dimension_id
    JOIN attribute t2 ON t2.id = a2.attribute_id
    WHERE p.set_id = :set_id AND {_CLASS}
    GROUP BY p.label, d1.name, t1.name, d2.name, t2.name
    HAVING count(*) >= :min_size
    """
)


async def class_counts(
    session: AsyncSession, set_id: int, class_name: str | None
) -> dict[str, tuple[int, int]]:
    """Per true class: (images, errors)."""
    rows = await session.execute(CLASS_COUNTS, {"set_id": set_id, "class_name": class_name})
    return {label: (int(n), int(k)) for label, n, k in rows}


async def slice_counts(
    session: AsyncSession, set_id: int, class_name: str | None, min_size: int, pairs: bool
) -> list[SliceCount]:
    """(class, conditions, images, errors) of every slice of at least min_size images."""
    params = {"set_id": set_id, "class_name": class_name, "min_size": min_size}
    found: list[SliceCount] = [
        (label, ((dim, attr),), int(n), int(k))
        for label, dim, attr, n, k in await session.execute(SINGLE_COUNTS, params)
    ]
    if pairs:
        found += [
            (label, ((d1, t1), (d2, t2)), int(n), int(k))
            for label, d1, t1, d2, t2, n, k in await session.execute(PAIR_COUNTS, params)
        ]
    return found


def _condition(i: int) -> str:
    return f"""
        AND EXISTS (
            SELECT 1 FROM assignment a JOIN dimension d ON d.id = a.dimension_id
            JOIN attribute t ON t.id = a.attribute_id
            WHERE a.job_id = p.job_id AND a.image_id = p.image_id
              AND d.name = :dimension{i} AND t.name = :attribute{i}
        )"""


async def slice_images(
    session: AsyncSession,
    set_id: int,
    class_name: str,
    conditions: list[tuple[str, str]],
    errors_only: bool,
    after: int,
    limit: int,
) -> list[Any]:
    """A page of a slice's images after an image id, by id: id, path, label, prediction,
    correct, confidence, split."""
    where = "".join(_condition(i) for i in range(len(conditions)))
    params: dict[str, Any] = {
        "set_id": set_id,
        "class_name": class_name,
        "after": after,
        "limit": limit,
    }
    for i, (dim, attr) in enumerate(conditions):
        params[f"dimension{i}"], params[f"attribute{i}"] = dim, attr
    query = text(
        f"""
        SELECT p.image_id, i.relpath, p.label, p.prediction, p.correct, p.confidence, p.split
        FROM prediction p JOIN image i ON i.id = p.image_id
        WHERE p.set_id = :set_id AND p.label = :class_name AND p.image_id > :after
          {"AND NOT p.correct" if errors_only else ""} {where}
        ORDER BY p.image_id LIMIT :limit
        """
    )
    return list((await session.execute(query, params)).all())
