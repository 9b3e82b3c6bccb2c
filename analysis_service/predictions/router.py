"""HTTP routes of prediction sets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from analysis_service.db import Session
from analysis_service.deps import JobId, Settings
from analysis_service.jobs.service import finished_job
from analysis_service.predictions import repository, schemas, service
from analysis_service.reasoners.names import MAX_NAME_CHARS

router = APIRouter(prefix="/v1/jobs/{job_id}/predictions", tags=["predictions"])
CREATED = {
    "status_code": status.HTTP_201_CREATED,
    "response_model": schemas.PredictionSetOut,
}


def _located(response: Response, job_id: str, created: schemas.PredictionSetOut) -> None:
    response.headers["Location"] = f"/v1/jobs/{job_id}/predictions/{created.id}"


@router.post("", **CREATED)  # type: ignore[arg-type]
async def create_predictions(
    job_id: JobId,
    body: schemas.PredictionsCreate,
    session: Session,
    settings: Settings,
    response: Response,
) -> schemas.PredictionSetOut:
    """Store a model's predictions on a finished job's images, from a CSV or JSONL file inside
    DATA_ROOTS or inline; 422 names the rows that do not fit the job."""
    created = service.to_schema(
        await service.create_from_body(session, settings.data_root_paths, job_id, body)
    )
    _located(response, job_id, created)
    return created


@router.post("/upload", **CREATED)  # type: ignore[arg-type]
async def upload_predictions(
    job_id: JobId,
    session: Session,
    response: Response,
    file: Annotated[UploadFile, File(description="A CSV or JSONL (.jsonl) file.")],
    name: Annotated[
        str | None, Form(min_length=1, max_length=MAX_NAME_CHARS, description="A unique name.")
    ] = None,
) -> schemas.PredictionSetOut:
    """The same from an uploaded file (multipart), within MAX_REQUEST_BYTES."""
    created = service.to_schema(
        await service.create_from_upload(
            session, job_id, file.file, file.filename or "upload.csv", name
        )
    )
    _located(response, job_id, created)
    return created


@router.get("", response_model=list[schemas.PredictionSetOut])
async def list_predictions(job_id: JobId, session: Session) -> list[schemas.PredictionSetOut]:
    """The job's prediction sets, oldest first."""
    job = await finished_job(session, job_id, service.WHAT)
    return [service.to_schema(s) for s in await repository.list_sets(session, job.id)]
