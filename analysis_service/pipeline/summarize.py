"""The summarize stage: count every subpopulation and the job's image totals. Idempotent."""

from __future__ import annotations

from analysis_service.assignments import repository as assignments
from analysis_service.jobs import repository as jobs
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline.context import RunContext


async def update_counts(ctx: RunContext) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await jobs.update_counts(session, ctx.job_id)


async def run(ctx: RunContext) -> None:
    await ctx.start_stage(Stage.SUMMARIZE, unit="classes")
    async with ctx.sessionmaker() as session, session.begin():
        await assignments.analyze_assignments(session)
        await assignments.update_sizes(session, ctx.job_id)
        await jobs.update_counts(session, ctx.job_id)
    await ctx.finish_stage(Stage.SUMMARIZE)
