"""The discovered structure as each class sees it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.jobs.schemas import JobOptions
from analysis_service.models import Job
from analysis_service.subpopulations import repository

#: class -> dimension -> attribute names, in discovery order.
ClassStructure = dict[str, dict[str, list[str]]]


async def class_structure(session: AsyncSession, job: Job) -> ClassStructure:
    """Each class's dimensions and attributes; a pooled job's one structure is every class's."""
    tree: ClassStructure = {}
    for row in await repository.subpopulations(session, job.id, None, None, 0):
        tree.setdefault(row.class_name, {}).setdefault(row.dimension, []).append(row.attribute)
    if JobOptions.model_validate(job.options or {}).pooled:
        shared = next(iter(tree.values()), {})
        classes = await repository.class_names(session, job.id)
        return {name: shared for name in classes}
    return tree


def dimensions_listing(tree: ClassStructure) -> str:
    """Which dimensions each class has, for an error message."""
    return "; ".join(f"{c}: {', '.join(dims) or '(none)'}" for c, dims in tree.items())
