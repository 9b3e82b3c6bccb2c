"""Slices of a finished job under one prediction set: counts from SQL, statistics from
slices.statistics, and the checks of a request against the job's structure."""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Job
from analysis_service.slices import repository, schemas
from analysis_service.slices.statistics import Cell, ScoredSlice, describe, score, testable
from analysis_service.subpopulations.service import ClassStructure, class_structure
from shared.errors import InvalidRequest


def _check_class(tree: ClassStructure, class_name: str) -> dict[str, list[str]]:
    if class_name not in tree:
        raise InvalidRequest(
            f"class '{class_name}' is not in the job; its classes: {', '.join(tree)}"
        )
    return tree[class_name]


def check_conditions(
    tree: ClassStructure, class_name: str, conditions: list[tuple[str, str]]
) -> None:
    """422 naming what exists when the class, a dimension or an attribute does not."""
    dims = _check_class(tree, class_name)
    if len({d for d, _ in conditions}) < len(conditions):
        raise InvalidRequest("the two conditions must name two different dimensions")
    for dim, attr in conditions:
        if dim not in dims:
            raise InvalidRequest(
                f"class '{class_name}' has no dimension '{dim}'; its dimensions: {', '.join(dims)}"
            )
        if attr not in dims[dim]:
            raise InvalidRequest(
                f"dimension '{dim}' of class '{class_name}' has no attribute '{attr}'; "
                f"its attributes: {', '.join(dims[dim])}"
            )


def _images_url(job: Job, set_id: int, s: ScoredSlice) -> str:
    params: dict[str, object] = {"predictions": set_id, "class": s.cell.class_name}
    for i, (dim, attr) in enumerate(s.cell.conditions):
        suffix = "" if i == 0 else "2"
        params[f"dimension{suffix}"], params[f"attribute{suffix}"] = dim, attr
    return f"/v1/jobs/{job.id}/slices/images?{urlencode(params)}"


def _to_schema(job: Job, set_id: int, s: ScoredSlice) -> schemas.Slice:
    return schemas.Slice(
        class_=s.cell.class_name,
        conditions=[schemas.Condition(dimension=d, attribute=a) for d, a in s.cell.conditions],
        size=s.cell.size,
        errors=s.cell.errors,
        error_rate=s.error_rate,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        baseline_error_rate=s.baseline_error_rate,
        gap=s.gap,
        p_value=s.p_value,
        q_value=s.q_value,
        significant=s.significant,
        description=describe(s),
        images_url=_images_url(job, set_id, s),
    )


async def slices(
    session: AsyncSession,
    job: Job,
    set_id: int,
    class_name: str | None,
    min_size: int,
    max_conditions: int,
    alpha: float,
    limit: int,
) -> schemas.SliceReport:
    """Every slice of at least min_size images tested, the first `limit` of the ranking shown;
    slices without an error are tested (they count for BH) but not listed."""
    if class_name is not None:
        _check_class(await class_structure(session, job), class_name)
    totals = await repository.class_counts(session, set_id, class_name)
    counted = await repository.slice_counts(
        session, set_id, class_name, min_size, pairs=max_conditions >= 2
    )
    cells = [
        Cell(label, conditions, n, k, *totals[label])
        for label, conditions, n, k in counted
        if label in totals
    ]
    scored = score(cells, alpha)
    listed = [s for s in scored if s.cell.errors > 0][:limit]
    return schemas.SliceReport(
        predictions=set_id,
        alpha=alpha,
        min_size=min_size,
        tested=sum(1 for c in cells if testable(c)),
        significant=sum(1 for s in scored if s.significant),
        items=[_to_schema(job, set_id, s) for s in listed],
    )


async def slice_images(
    session: AsyncSession,
    job: Job,
    set_id: int,
    class_name: str,
    conditions: list[tuple[str, str]],
    errors_only: bool,
    after: int,
    limit: int,
) -> schemas.SliceImagePage:
    check_conditions(await class_structure(session, job), class_name, conditions)
    rows = await repository.slice_images(
        session, set_id, class_name, conditions, errors_only, after, limit + 1
    )
    items = [
        schemas.SliceImage(
            image_id=r[0],
            image=r[1],
            label=r[2],
            prediction=r[3],
            correct=r[4],
            confidence=r[5],
            split=r[6],
        )
        for r in rows[:limit]
    ]
    next_after = items[-1].image_id if len(rows) > limit else None
    return schemas.SliceImagePage(items=items, next_after=next_after)
