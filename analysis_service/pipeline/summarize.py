"""Stage 4: count every subpopulation and the job's image totals. Idempotent."""

from __future__ import annotations

from sqlalchemy import text

from analysis_service.pipeline.context import JobContext

STAGE = "summarize"

_SIZES = text(
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

_COUNTS = text(
    """
    UPDATE job SET
        images = c.images,
        invalid = c.invalid,
        valid = c.images - c.invalid
    FROM (
        SELECT count(*) AS images,
               count(*) FILTER (WHERE i.invalid_reason IS NOT NULL
                                   OR ji.caption_error IS NOT NULL) AS invalid
        FROM job_image ji JOIN image i ON i.id = ji.image_id
        WHERE ji.job_id = :job_id
    ) c
    WHERE job.id = :job_id
    """
)


async def update_counts(ctx: JobContext) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(_COUNTS, {"job_id": ctx.job_id})


async def run(ctx: JobContext) -> None:
    await ctx.start_stage(STAGE, unit="classes")
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(_SIZES, {"job_id": ctx.job_id})
        await session.execute(_COUNTS, {"job_id": ctx.job_id})
    await ctx.finish_stage(STAGE)
