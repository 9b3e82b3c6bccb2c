"""HTTP routes of jobs."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from analysis_service.auth.dependencies import Caller
from analysis_service.db import Session
from analysis_service.deps import JobId, Limit, Offset, Settings
from analysis_service.jobs import repository, schemas, service
from analysis_service.jobs.lifecycle import JobStatus
from analysis_service.schemas import Page
from analysis_service.subpopulations.schemas import InvalidImageOut
from shared.errors import Conflict, ErrorBody, render_error

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=schemas.JobAccepted)
async def create_job(
    body: schemas.JobCreate,
    session: Session,
    settings: Settings,
    response: Response,
    caller: Caller,
) -> schemas.JobAccepted:
    """Start discovery on a dataset folder; poll the Location it returns."""
    job, root = await service.create_job(session, settings, body, submitted_by=caller.name)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return schemas.JobAccepted(id=job.id, status=JobStatus.QUEUED, dataset_path=root)


@router.get("", response_model=Page[schemas.Job])
async def list_jobs(
    session: Session,
    settings: Settings,
    limit: Limit = 50,
    offset: Offset = 0,
    status: JobStatus | None = None,
) -> Page[schemas.Job]:
    """Jobs, newest first."""
    items, total = await service.list_jobs(session, settings, limit, offset, status)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=schemas.Job)
async def get_job(job_id: JobId, session: Session, settings: Settings) -> schemas.Job:
    """Status, stage, progress per stage, image counts, timings, LLM cost and error."""
    return await service.get_job(session, service.parse_job_id(job_id), settings)


@router.post("/{job_id}/cancel", response_model=schemas.Job)
async def cancel_job(job_id: JobId, session: Session, settings: Settings) -> schemas.Job:
    """Cancel a job; a running one stops at its next batch."""
    return await service.cancel_job(session, service.parse_job_id(job_id), settings)


@router.post("/{job_id}/retry", response_model=schemas.Job, status_code=status.HTTP_202_ACCEPTED)
async def retry_job(job_id: JobId, session: Session, settings: Settings) -> schemas.Job:
    """Queue a failed or cancelled job again; finished work is kept."""
    return await service.retry_job(session, service.parse_job_id(job_id), settings)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={409: {"model": ErrorBody, "description": "The job is still running."}},
)
async def delete_job(job_id: JobId, session: Session, settings: Settings) -> Response:
    """Delete a job: its results, and the images and captions no other job uses; the
    dataset's files are never touched. A running job is asked to stop first (as cancel does)
    and the answer is 409: delete it again once it has ended."""
    running = await service.delete_job(session, service.parse_job_id(job_id), settings)
    if running is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # Answered, not raised: the cancel asked for is committed with the request.
    detail = (
        f"job '{job_id}' is running; it has been asked to stop at its next batch: "
        "delete it again once it has ended"
    )
    return render_error(status.HTTP_409_CONFLICT, ErrorBody(error=Conflict.code, detail=detail))


@router.get("/{job_id}/invalid-images", response_model=Page[InvalidImageOut])
async def invalid_images(
    job_id: JobId, session: Session, limit: Limit = 100, offset: Offset = 0
) -> Page[InvalidImageOut]:
    """Every file the job skipped, with the reason."""
    job = await service.existing_job(session, job_id)
    rows, total = await repository.invalid_images(session, job.id, limit, offset)
    items = [InvalidImageOut(path=p, class_=c, reason=r) for p, c, r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}/events", response_model=list[schemas.JobEventOut])
async def job_events(job_id: JobId, session: Session) -> list[schemas.JobEventOut]:
    """The job's timeline: each attempt's start, interruptions and the outcome."""
    job = await service.existing_job(session, job_id)
    return [
        schemas.JobEventOut(at=e.at, kind=e.kind, stage=e.stage, message=e.message)
        for e in await repository.events(session, job.id)
    ]
