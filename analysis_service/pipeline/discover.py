"""Stage 3: per class, have the reasoner propose dimensions and attributes, then assign.

The structure of a class is written in one transaction and marked done, so a resumed job never
proposes twice; assignment then pages through the class's captioned images that still lack
assignments, one committed batch at a time.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Assignment, Attribute, Dimension, Job, JobClass
from analysis_service.pipeline.context import JobContext
from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, Reasoner

logger = logging.getLogger(__name__)
STAGE = "discover"

# The job's captioned images with their class, caption text and key.
_CAPTIONED = """
    FROM job_image ji
    JOIN job j ON j.id = ji.job_id
    JOIN image i ON i.id = ji.image_id
    JOIN caption c ON c.content_hash = i.content_hash AND c.caption_key = j.caption_key
    WHERE ji.job_id = :job_id AND i.invalid_reason IS NULL AND ji.caption_error IS NULL
"""


def _group(ctx: JobContext) -> str:
    """The SQL expression that groups images: their class, or one pooled group."""
    return "CAST('all' AS text)" if ctx.options.get("mode") == "organization" else "i.class_name"


def goal_of(options: dict) -> Goal:
    return Goal(criterion=options.get("criterion"), num_attributes=options.get("num_attributes"))


def subject_of(ctx: JobContext, group: str) -> str:
    if ctx.options.get("mode") == "organization":
        return str(ctx.options.get("subject") or "the images of a dataset")
    return group


async def _classes(ctx: JobContext) -> list[tuple[str, int]]:
    sql = text(f"SELECT {_group(ctx)}, count(*) {_CAPTIONED} GROUP BY 1 ORDER BY 1")
    async with ctx.sessionmaker() as session:
        return [(r[0], int(r[1])) for r in await session.execute(sql, {"job_id": ctx.job_id})]


async def _sample(ctx: JobContext, class_name: str) -> list[str]:
    """A seeded, repeatable sample: order by a hash of content and seed."""
    sql = text(
        f"SELECT c.text {_CAPTIONED} AND {_group(ctx)} = :cls "
        "ORDER BY md5(i.content_hash || :seed), i.id LIMIT :n"
    )
    params = {
        "job_id": ctx.job_id,
        "cls": class_name,
        "seed": str(ctx.seed),
        "n": ctx.settings.discovery_sample_size,
    }
    async with ctx.sessionmaker() as session:
        return [r[0] for r in await session.execute(sql, params)]


async def _class_state(session: AsyncSession, ctx: JobContext, class_name: str) -> JobClass:
    await session.execute(
        insert(JobClass).values(job_id=ctx.job_id, class_name=class_name).on_conflict_do_nothing()
    )
    return (
        await session.execute(
            select(JobClass).where(JobClass.job_id == ctx.job_id, JobClass.class_name == class_name)
        )
    ).scalar_one()


async def _write_structure(
    session: AsyncSession, ctx: JobContext, class_name: str, proposals: list[DimensionProposal]
) -> None:
    for d_pos, proposal in enumerate(proposals):
        dim_id = await session.scalar(
            insert(Dimension)
            .values(job_id=ctx.job_id, class_name=class_name, name=proposal.name, position=d_pos)
            .returning(Dimension.id)
        )
        names = [a for a in dict.fromkeys(proposal.attributes) if a != OTHER] + [OTHER]
        await session.execute(
            insert(Attribute).values(
                [
                    {
                        "dimension_id": dim_id,
                        "job_id": ctx.job_id,
                        "name": name,
                        "position": a_pos,
                        "is_other": name == OTHER,
                    }
                    for a_pos, name in enumerate(names)
                ]
            )
        )


async def _load_structure(
    ctx: JobContext, class_name: str
) -> tuple[list[DimensionProposal], dict[tuple[str, str], int], dict[str, int]]:
    async with ctx.sessionmaker() as session:
        rows = await session.execute(
            select(Dimension.id, Dimension.name, Attribute.id, Attribute.name, Attribute.is_other)
            .join(Attribute, Attribute.dimension_id == Dimension.id)
            .where(Dimension.job_id == ctx.job_id, Dimension.class_name == class_name)
            .order_by(Dimension.position, Attribute.position)
        )
        dims: dict[str, DimensionProposal] = {}
        attr_ids: dict[tuple[str, str], int] = {}
        dim_ids: dict[str, int] = {}
        for dim_id, dim_name, attr_id, attr_name, is_other in rows:
            dim = dims.setdefault(dim_name, DimensionProposal(dim_name))
            dim_ids[dim_name] = dim_id
            attr_ids[(dim_name, attr_name)] = attr_id
            if not is_other:
                dim.attributes.append(attr_name)
    return list(dims.values()), attr_ids, dim_ids


async def _structure_class(ctx: JobContext, reasoner: Reasoner, class_name: str) -> None:
    captions = await _sample(ctx, class_name)
    subject = subject_of(ctx, class_name)
    proposed = await reasoner.propose(subject, captions, ctx.seed, goal_of(ctx.options))
    proposals = [p for p in proposed if p.attributes]
    async with ctx.sessionmaker() as session, session.begin():
        state = await _class_state(session, ctx, class_name)
        if state.structured_at is not None:  # another attempt finished it meanwhile
            return
        await _write_structure(session, ctx, class_name, proposals)
        await session.execute(
            update(JobClass)
            .where(JobClass.job_id == ctx.job_id, JobClass.class_name == class_name)
            .values(structured_at=func.now())
        )


async def _unassigned_page(ctx: JobContext, class_name: str, after: int) -> list[tuple[int, str]]:
    sql = text(
        f"SELECT i.id, c.text {_CAPTIONED} AND {_group(ctx)} = :cls AND i.id > :after "
        "AND NOT EXISTS (SELECT 1 FROM assignment a WHERE a.job_id = ji.job_id "
        "                AND a.image_id = i.id) "
        "ORDER BY i.id LIMIT :n"
    )
    params = {
        "job_id": ctx.job_id,
        "cls": class_name,
        "after": after,
        "n": ctx.settings.assign_batch_size,
    }
    async with ctx.sessionmaker() as session:
        return [(int(r[0]), r[1]) for r in await session.execute(sql, params)]


async def _assign_class(ctx: JobContext, reasoner: Reasoner, class_name: str) -> int:
    dims, attr_ids, dim_ids = await _load_structure(ctx, class_name)
    if not dims:
        return 0
    after, assigned = 0, 0
    while page := await _unassigned_page(ctx, class_name, after):
        await ctx.check_cancelled()
        subject = subject_of(ctx, class_name)
        answers = await reasoner.assign(subject, dims, [text_ for _, text_ in page])
        rows = []
        for (image_id, _), answer in zip(page, answers, strict=True):
            for dim in dims:
                chosen = answer.choices.get(dim.name, OTHER)
                note = answer.notes.get(dim.name)
                # Anything outside the allowed list is recorded as 'other', never as an attribute.
                attr_id = attr_ids.get((dim.name, chosen))
                if attr_id is None:
                    attr_id = attr_ids[(dim.name, OTHER)]
                    note = note or f"answer {chosen!r} is not an allowed value"
                rows.append(
                    {
                        "job_id": ctx.job_id,
                        "image_id": image_id,
                        "dimension_id": dim_ids[dim.name],
                        "attribute_id": attr_id,
                        "note": note,
                    }
                )
        async with ctx.sessionmaker() as session, session.begin():
            await session.execute(insert(Assignment).values(rows).on_conflict_do_nothing())
        after = page[-1][0]
        assigned += len(page)
    return assigned


async def _estimate(ctx: JobContext) -> dict[str, int] | None:
    """The LLM cost from the real captions, before the costly stages run."""
    if not ctx.settings.llm_base_url:
        return None
    from analysis_service.reasoners import discovery_steps
    from analysis_service.reasoners.estimate import Group, estimate

    sql = text(f"SELECT count(*), avg(length(c.text)) {_CAPTIONED} GROUP BY {_group(ctx)}")
    async with ctx.sessionmaker() as session:
        rows = (await session.execute(sql, {"job_id": ctx.job_id})).all()
    groups = [Group(int(n), max(1.0, float(chars or 0) / 4)) for n, chars in rows]
    goal = goal_of(ctx.options)
    config = discovery_steps(ctx.settings, ctx.options)
    return estimate(config, groups, goal.criterion is not None, goal.num_attributes)


async def run(ctx: JobContext, reasoner: Reasoner) -> None:
    classes = await _classes(ctx)
    cost = await _estimate(ctx)
    async with ctx.sessionmaker() as session, session.begin():
        values: dict = {"reasoner": reasoner.name}
        if cost is not None:
            values["llm_estimate"] = cost
        await session.execute(update(Job).where(Job.id == ctx.job_id).values(**values))
        states = {}
        for class_name, count in classes:
            state = await _class_state(session, ctx, class_name)
            state.images = count
            states[class_name] = (state.structured_at, state.assigned_at)
    done = sum(1 for s, a in states.values() if a is not None)
    await ctx.start_stage(STAGE, done=done, total=len(classes), unit="classes")
    for class_name, _ in classes:
        structured, assigned = states[class_name]
        if assigned is not None:
            continue
        await ctx.check_cancelled()
        if structured is None:
            await _structure_class(ctx, reasoner, class_name)
        await _assign_class(ctx, reasoner, class_name)
        async with ctx.sessionmaker() as session, session.begin():
            await session.execute(
                update(JobClass)
                .where(JobClass.job_id == ctx.job_id, JobClass.class_name == class_name)
                .values(assigned_at=func.now())
            )
        done += 1
        await ctx.update_stage(STAGE, done=done)
    await ctx.finish_stage(STAGE)
