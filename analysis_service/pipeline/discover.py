"""The discover stage: per class, have the reasoner propose dimensions and attributes, then assign.

Each class is a shard (pipeline/fanout.py) that any worker discovers, its structure and then
its assignments, in one process: the offline reasoner assigns with what it fitted while
proposing. The LLM cost estimate and the budget check come first, in the job's run. With the
LLM, the job's run discovers the classes itself, one after another: a job's token budget and
LLM_CONCURRENCY hold for the job, which runners in several processes could not keep.

The structure of a class is written in one transaction and marked done, so a resumed job never
proposes twice; assignment then pages through the class's captioned images that still lack
assignments, one committed batch at a time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from analysis_service.assignments import repository as assignments
from analysis_service.captions import repository as captions
from analysis_service.jobs.lifecycle import Stage
from analysis_service.jobs.schemas import JobOptions
from analysis_service.pipeline import fanout
from analysis_service.pipeline.context import RunContext, StageFailed, Transports
from analysis_service.pipeline.fanout import HeldShard, Plan, ShardWork
from analysis_service.reasoners import estimate
from analysis_service.reasoners.base import OTHER, Goal, Reasoner, coerce_choice
from analysis_service.reasoners.estimate import Group, tokens_for_chars
from analysis_service.reasoners.factory import open_reasoner
from analysis_service.reasoners.llm_prompts import LEAD_IN
from analysis_service.reasoners.names import checked_proposals
from analysis_service.shards.repository import Span

logger = logging.getLogger(__name__)


def goal_of(options: JobOptions) -> Goal:
    return Goal(criterion=options.criterion, num_attributes=options.num_attributes)


def subject_of(ctx: RunContext, group: str) -> str:
    if ctx.options.pooled:
        return ctx.options.subject or "the images of a dataset"
    return group


async def _structure_class(ctx: RunContext, reasoner: Reasoner, class_name: str) -> None:
    async with ctx.sessionmaker() as session:
        sample = await captions.sample_captions(
            session,
            ctx.job_id,
            class_name,
            ctx.options.pooled,
            ctx.options.seed,
            ctx.settings.discovery_sample_size,
        )
    subject = subject_of(ctx, class_name)
    proposed = await reasoner.propose(subject, sample, ctx.options.seed, goal_of(ctx.options))
    # Names are checked here too, for every reasoner: only valid names are ever stored.
    kept = checked_proposals(proposed, subject)
    async with ctx.sessionmaker() as session, session.begin():
        await assignments.write_structure(session, ctx.job_id, class_name, kept)


async def _unassigned_page(ctx: RunContext, class_name: str, after: int) -> list[tuple[int, str]]:
    async with ctx.sessionmaker() as session:
        return await assignments.unassigned_page(
            session,
            ctx.job_id,
            class_name,
            ctx.options.pooled,
            after,
            ctx.settings.assign_batch_size,
        )


async def _assign_class(ctx: RunContext, reasoner: Reasoner, class_name: str) -> int:
    async with ctx.sessionmaker() as session:
        found = await assignments.structure(session, ctx.job_id, class_name)
    if not found.dimensions:
        return 0
    subject = subject_of(ctx, class_name)
    after, assigned = 0, 0
    while page := await _unassigned_page(ctx, class_name, after):
        await ctx.check_cancelled()
        answers = await reasoner.assign(subject, found.dimensions, [t for _, t in page])
        rows = []
        for (image_id, _), answer in zip(page, answers, strict=True):
            for dim in found.dimensions:
                # A reasoner's answer is checked again here: only stored attributes are stored.
                chosen, bad = coerce_choice(answer.choices.get(dim.name, OTHER), dim.attributes)
                rows.append(
                    {
                        "job_id": ctx.job_id,
                        "image_id": image_id,
                        "dimension_id": found.dimension_ids[dim.name],
                        "attribute_id": found.attribute_ids[(dim.name, chosen)],
                        "note": answer.notes.get(dim.name) or bad,
                    }
                )
        async with ctx.sessionmaker() as session, session.begin():
            await assignments.insert_assignments(session, rows)
        after = page[-1][0]
        assigned += len(page)
        if len(page) < ctx.settings.assign_batch_size:
            break  # a short page is the class's last: no query for an empty one
    return assigned


def _estimate(ctx: RunContext, groups: list[tuple[str, int, float]]) -> dict[str, int] | None:
    """The LLM cost from the real captions, before the costly steps run."""
    sizes = [Group(images, tokens_for_chars(chars)) for _, images, chars in groups]
    return estimate.for_job(ctx.settings, ctx.options, sizes)


async def _discover_class(ctx: RunContext, reasoner: Reasoner, shard: HeldShard) -> None:
    """One class: its structure unless an earlier runner wrote it, its assignments still
    missing, and the class marked assigned with the shard's progress."""
    await shard.restart(0)
    class_name = shard.lo or ""
    async with ctx.sessionmaker() as session:
        progress = await assignments.class_progress(session, ctx.job_id, class_name)
    if progress.assigned_at is None:
        await ctx.check_cancelled()
        if progress.structured_at is None:
            await _structure_class(ctx, reasoner, class_name)
        await _assign_class(ctx, reasoner, class_name)
    async with ctx.sessionmaker() as session, session.begin():
        await assignments.mark_assigned(session, ctx.job_id, class_name)
        await shard.count_in(session, 1)


@asynccontextmanager
async def shard_worker(
    ctx: RunContext, root: Path, transports: Transports
) -> AsyncIterator[ShardWork]:
    """How a shard task discovers a class: with a reasoner of its own."""
    async with open_reasoner(ctx, transports.llm) as reasoner:
        yield partial(_discover_class, ctx, reasoner)


async def run(ctx: RunContext, reasoner: Reasoner) -> None:
    async with ctx.sessionmaker() as session:
        # Measured as prompts show captions, so that the estimate counts what is sent.
        groups = await captions.captioned_groups(
            session, ctx.job_id, ctx.options.pooled, lead_in=LEAD_IN
        )
    cost = _estimate(ctx, groups)
    await ctx.record(reasoner=reasoner.name, **({"llm_estimate": cost} if cost else {}))
    # Before any LLM call: a budget below what every job spends fails now, with the estimate.
    if problem := estimate.budget_problem(ctx.options.token_budget, cost):
        raise StageFailed(problem)
    async with ctx.sessionmaker() as session, session.begin():
        await assignments.record_classes(
            session, ctx.job_id, [(name, images) for name, images, _ in groups]
        )
    await ctx.start_stage(Stage.DISCOVER, unit="classes")

    async def plan() -> Plan:
        return Plan([Span(name, None, 1) for name, _, _ in groups], total=len(groups))

    await fanout.run_stage(
        ctx,
        Stage.DISCOVER,
        plan,
        partial(_discover_class, ctx, reasoner),
        fan_out=ctx.settings.llm_in_use is None,
    )
    await ctx.finish_stage(Stage.DISCOVER)
