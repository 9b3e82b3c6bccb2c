"""What an explorer URL names, checked against the database before a page is served, so that
an unknown job, subpopulation or prediction set gets a page saying so (and 404)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.deps import MAX_ID
from analysis_service.explorer.html import shown
from analysis_service.jobs import repository as jobs
from analysis_service.jobs.schemas import JobOptions
from analysis_service.predictions import repository as predictions
from analysis_service.subpopulations import repository as subpopulations


class PageNotFound(Exception):
    """What the URL names does not exist; the message (HTML, escaped) says what."""


@dataclass(frozen=True)
class JobTarget:
    job_id: uuid.UUID
    dataset_path: str
    status: str
    has_images: bool


def _row_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID else None


async def job_target(
    session: AsyncSession, raw_job: str, subpopulation: str | None, prediction_set: str | None
) -> JobTarget:
    """The job a job page shows, after checking that the subpopulation and prediction set the
    URL opens belong to it."""
    try:
        found = await jobs.get_job(session, uuid.UUID(raw_job))
    except ValueError:
        found = None
    if found is None:
        raise PageNotFound(f"There is no job <code>{shown(raw_job)}</code>.")
    job, path, _ = found
    if subpopulation is not None:
        sid = _row_id(subpopulation)
        owner = None if sid is None else await subpopulations.subpopulation_job(session, sid)
        if owner is None or owner.job_id != job.id:
            raise PageNotFound(
                f"Job <code>{shown(raw_job)}</code> has no subpopulation "
                f"<code>{shown(subpopulation)}</code>."
            )
    if prediction_set is not None:
        set_id = _row_id(prediction_set)
        if set_id is None or await predictions.get_set(session, job.id, set_id) is None:
            raise PageNotFound(
                f"Job <code>{shown(raw_job)}</code> has no prediction set "
                f"<code>{shown(prediction_set)}</code>."
            )
    has_images = JobOptions.model_validate(job.options or {}).has_folder
    return JobTarget(job.id, path, job.status, has_images)
