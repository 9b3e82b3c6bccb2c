"""HTTP routes of slices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from analysis_service.db import Session
from analysis_service.deps import MAX_ID, MAX_OFFSET, ClassName, JobId, Limit
from analysis_service.jobs.service import finished_job
from analysis_service.predictions.service import WHAT, prediction_set
from analysis_service.reasoners.names import MAX_NAME_CHARS
from analysis_service.slices import schemas, service
from shared.errors import InvalidRequest
from shared.paths import NAME_MAX

router = APIRouter(prefix="/v1/jobs/{job_id}/slices", tags=["slices"])
SetId = Annotated[int, Query(ge=1, le=MAX_ID, description="A prediction set of the job (its id).")]
Name = Annotated[str, Query(min_length=1, max_length=MAX_NAME_CHARS)]
OptionalName = Annotated[str | None, Query(min_length=1, max_length=MAX_NAME_CHARS)]


@router.get("", response_model=schemas.SliceReport)
async def list_slices(
    job_id: JobId,
    session: Session,
    predictions: SetId,
    class_: ClassName = None,
    min_size: Annotated[int, Query(ge=1, le=MAX_OFFSET, description="Smallest slice tested.")] = 20,
    max_conditions: Annotated[
        int, Query(ge=1, le=2, description="1: single attributes; 2: also pairs.")
    ] = 2,
    alpha: Annotated[
        float, Query(gt=0, lt=1, description="False discovery rate (Benjamini-Hochberg).")
    ] = 0.05,
    limit: Annotated[int, Query(ge=1, le=1000, description="Slices shown.")] = 50,
) -> schemas.SliceReport:
    """Where the model errs: each (class, attribute) and pair of attributes with its error
    rate, Wilson interval, exact test against the rest of its class and BH q-value."""
    job = await finished_job(session, job_id, WHAT)
    found = await prediction_set(session, job, predictions)
    return await service.slices(
        session, job, found.id, class_, min_size, max_conditions, alpha, limit
    )


@router.get("/images", response_model=schemas.SliceImagePage)
async def slice_images(
    job_id: JobId,
    session: Session,
    predictions: SetId,
    class_: Annotated[str, Query(alias="class", min_length=1, max_length=NAME_MAX)],
    dimension: Name,
    attribute: Name,
    dimension2: OptionalName = None,
    attribute2: OptionalName = None,
    errors_only: Annotated[bool, Query(description="Only the images predicted wrong.")] = False,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="The last image_id of the previous page.")
    ] = 0,
    limit: Limit = 100,
) -> schemas.SliceImagePage:
    """A slice's images with their predictions, by image id (pages by `after`)."""
    job = await finished_job(session, job_id, WHAT)
    found = await prediction_set(session, job, predictions)
    conditions = [(dimension, attribute)]
    if (dimension2 is None) != (attribute2 is None):
        raise InvalidRequest("dimension2 and attribute2 go together")
    if dimension2 is not None and attribute2 is not None:
        conditions.append((dimension2, attribute2))
    return await service.slice_images(
        session, job, found.id, class_, conditions, errors_only, after, limit
    )
