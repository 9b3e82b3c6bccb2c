"""Every SQL statement of exports: one row per image with its caption, its attribute in every
dimension of its class and each prediction set's answer."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncResult, AsyncSession

# Per image, its attributes and predictions folded into JSON objects by correlated
# subqueries on the (job, image) keys, so rows stream in image order without a pivot in memory.
EXPORT_ROWS = text(
    """
    SELECT i.relpath, i.class_name, c.text,
        (SELECT jsonb_object_agg(d.name, t.name) FROM assignment a
         JOIN dimension d ON d.id = a.dimension_id JOIN attribute t ON t.id = a.attribute_id
         WHERE a.job_id = ji.job_id AND a.image_id = ji.image_id) AS dimensions,
        (SELECT jsonb_object_agg(p.set_id::text, jsonb_build_array(p.prediction, p.correct))
         FROM prediction p WHERE p.job_id = ji.job_id AND p.image_id = ji.image_id) AS predictions
    FROM job_image ji
    JOIN job j ON j.id = ji.job_id
    JOIN image i ON i.id = ji.image_id
    LEFT JOIN caption c ON c.content_hash = i.content_hash AND c.caption_key = j.caption_key
    WHERE ji.job_id = :job_id AND i.invalid_reason IS NULL AND ji.caption_error IS NULL
    ORDER BY i.id
    """
).execution_options(yield_per=5000)


async def stream_rows(session: AsyncSession, job_id: uuid.UUID) -> AsyncResult:
    return await session.stream(EXPORT_ROWS, {"job_id": job_id})
