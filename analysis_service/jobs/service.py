"""Job logic: submission checks, state changes, and the public view of a job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.datasets import repository as datasets
from analysis_service.datasets.layout import check_layout
from analysis_service.jobs import repository, schemas
from analysis_service.models import Job
from analysis_service.queue import enqueue_run_job
from analysis_service.settings import AnalysisSettings
from shared.errors import Conflict, NotFound
from shared.paths import resolve_folder_inside_roots


class JobNotFound(NotFound):
    """Job not found."""


def parse_job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise JobNotFound(f"job '{raw}' not found") from None


def to_schema(job: Job, dataset_path: str, caption_info: dict | None) -> schemas.Job:
    end = job.finished_at or (datetime.now(UTC) if job.started_at else None)
    duration = (end - job.started_at).total_seconds() if end and job.started_at else None
    engine = f"{caption_info['engine']}/{caption_info['model']}" if caption_info else None
    return schemas.Job(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        stage=job.stage,
        dataset_path=dataset_path,
        progress={k: schemas.StageProgress(**v) for k, v in (job.progress or {}).items()},
        images=job.images,
        valid=job.valid,
        invalid=job.invalid,
        seed=int(job.options.get("seed", 0)),
        caption_engine=engine,
        reasoner=job.reasoner,
        error=job.error,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_s=duration,
    )


async def create_job(
    session: AsyncSession, settings: AnalysisSettings, body: schemas.JobCreate
) -> tuple[Job, str]:
    """Check the folder, register the dataset, create the job and queue it atomically."""
    root = resolve_folder_inside_roots(body.dataset_path, settings.data_root_paths)
    check_layout(root)
    dataset_id = await datasets.get_or_create_dataset(session, str(root))
    options = {"seed": body.seed, "caption_class_hint": body.caption_class_hint}
    job = await repository.add_job(session, dataset_id, options)
    await enqueue_run_job(session, job.id)
    return job, str(root)


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> schemas.Job:
    found = await repository.get_job(session, job_id)
    if found is None:
        raise JobNotFound(f"job '{job_id}' not found")
    return to_schema(*found)


async def cancel_job(session: AsyncSession, job_id: uuid.UUID) -> schemas.Job:
    """Queued jobs are cancelled at once; running ones stop at their next batch."""
    found = await repository.get_job(session, job_id)
    if found is None:
        raise JobNotFound(f"job '{job_id}' not found")
    job = found[0]
    if job.status in ("succeeded", "failed", "cancelled"):
        raise Conflict(f"job '{job_id}' is already {job.status}")
    job.cancel_requested = True
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", func.now()
    await session.flush()
    await session.refresh(job)
    return to_schema(job, found[1], found[2])


async def retry_job(session: AsyncSession, job_id: uuid.UUID) -> schemas.Job:
    """Queue a failed or cancelled job again; it resumes from what it finished."""
    found = await repository.get_job(session, job_id)
    if found is None:
        raise JobNotFound(f"job '{job_id}' not found")
    job = found[0]
    if job.status not in ("failed", "cancelled"):
        raise Conflict(f"job '{job_id}' is {job.status}; only failed or cancelled jobs are retried")
    job.status, job.cancel_requested, job.error, job.finished_at = "queued", False, None, None
    await enqueue_run_job(session, job.id)
    await session.flush()
    await session.refresh(job)
    return to_schema(job, found[1], found[2])
