"""Job logic: submission checks, state changes, and the public view of a job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.captions import repository as captions
from analysis_service.datasets import repository as datasets
from analysis_service.datasets.captions_file import check_head, open_captions_file
from analysis_service.datasets.layout import check_layout
from analysis_service.jobs import lifecycle, repository, schemas
from analysis_service.models import Job, PredictionSet
from analysis_service.predictions import repository as predictions
from analysis_service.predictions.schemas import PredictionSetBrief, accuracy
from analysis_service.reasoners.names import name_problem
from analysis_service.settings import AnalysisSettings
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.paths import resolve_file_inside_roots, resolve_folder_inside_roots

T = TypeVar("T")


class JobNotFound(NotFound):
    """Job not found."""


def parse_job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise JobNotFound(f"job '{raw}' not found") from None


def _found(found: T | None, job_id: object) -> T:
    """What a lookup of a job found, or 404."""
    if found is None:
        raise JobNotFound(f"job '{job_id}' not found")
    return found


async def existing_job(session: AsyncSession, raw_id: str) -> Job:
    """The job row of an id from a URL, or 404."""
    return _found(await session.get(Job, parse_job_id(raw_id)), raw_id)


async def finished_job(session: AsyncSession, raw_id: str, what: str) -> Job:
    """The job row of an id from a URL: 404 if there is none, 409 unless it has succeeded
    (what: what waits for that, e.g. "subpopulations are available")."""
    job = await existing_job(session, raw_id)
    if job.status != lifecycle.JobStatus.SUCCEEDED:
        raise Conflict(f"job '{raw_id}' is {job.status}; {what} once it has succeeded")
    return job


Sets = tuple[list[PredictionSet], int]


def _links(job_id: uuid.UUID) -> schemas.JobLinks:
    base = f"/v1/jobs/{job_id}"
    return schemas.JobLinks(
        structure=f"{base}/structure",
        predictions=f"{base}/predictions",
        groups=f"{base}/groups?dimension={{dimension}}",
        export=f"{base}/export?format=parquet",
        tail=f"{base}/tail",
    )


def _predictions(job_id: uuid.UUID, sets: Sets | None) -> schemas.JobPredictions:
    latest, total = sets or ([], 0)
    return schemas.JobPredictions(
        total=total,
        latest=[
            PredictionSetBrief(
                id=s.id,
                name=s.name,
                rows=s.rows,
                accuracy=accuracy(s.rows, s.errors),
                slices_url=f"/v1/jobs/{job_id}/slices?{urlencode({'predictions': s.id})}",
            )
            for s in latest
        ],
    )


def to_schema(
    job: Job,
    dataset_path: str,
    caption_info: dict | None,
    sets: Sets | None,
    settings: AnalysisSettings,
) -> schemas.Job:
    """The public view of a job; sets: its newest prediction sets and how many it has."""
    end = job.finished_at or (datetime.now(UTC) if job.started_at else None)
    duration = (end - job.started_at).total_seconds() if end and job.started_at else None
    engine = f"{caption_info['engine']}/{caption_info['model']}" if caption_info else None
    options = schemas.JobOptions.model_validate(job.options or {})
    succeeded = job.status == lifecycle.JobStatus.SUCCEEDED
    return schemas.Job(
        id=job.id,
        status=lifecycle.JobStatus(job.status),
        cancel_requested=job.cancel_requested,
        stage=job.stage,
        dataset_path=dataset_path,
        progress={k: schemas.StageProgress(**v) for k, v in (job.progress or {}).items()},
        images=job.images,
        valid=job.valid,
        invalid=job.invalid,
        seed=options.seed,
        mode=options.mode,
        criterion=options.criterion,
        captions_path=options.captions_path,
        caption_engine=engine,
        reasoner=job.reasoner,
        llm=schemas.LLMUsage(
            model=settings.llm_in_use,
            estimate=job.llm_estimate,
            spent=schemas.LLMSpent(
                calls=job.llm_calls,
                prompt_tokens=job.llm_prompt_tokens,
                completion_tokens=job.llm_completion_tokens,
                tokens=job.llm_prompt_tokens + job.llm_completion_tokens,
            ),
            budget=options.token_budget,
        ),
        error=job.error,
        submitted_by=job.api_key_name,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_s=duration,
        links=_links(job.id) if succeeded else None,
        predictions=_predictions(job.id, sets) if succeeded else None,
    )


def _inspect_inputs(settings: AnalysisSettings, body: schemas.JobCreate) -> schemas.JobOptions:
    """Resolve the dataset folder and captions file and check them cheaply (it touches the
    disk: run it off the event loop); the job's options. A folder is checked for class folders
    and a first image, a captions file is opened (checked) and its head read: the job counts
    the files, reads and checks every row, estimates the LLM cost and checks the budget, all
    before any LLM call."""
    # The criterion becomes a dimension's name: the rules of names a model proposes hold for
    # it (its length is the schema's; the characters no JSON Schema pattern can say).
    if body.criterion is not None and (problem := name_problem(body.criterion)):
        raise InvalidRequest(f"criterion is not a dimension name: {problem}")
    roots = settings.data_root_paths
    parameters = body.model_dump(include=set(schemas.JobParameters.model_fields))
    options = schemas.JobOptions(**parameters)
    if body.dataset_path is not None:
        root = resolve_folder_inside_roots(body.dataset_path, roots)
        check_layout(root)
        options.dataset_path = str(root)
    if body.captions_path is not None:
        path = resolve_file_inside_roots(
            body.captions_path, roots, "a CSV or JSONL file of captions"
        )
        with open_captions_file(path, roots) as opened:
            check_head(opened, path.name)
        options.captions_path = str(path)
    return options


async def create_job(
    session: AsyncSession,
    settings: AnalysisSettings,
    body: schemas.JobCreate,
    submitted_by: str | None = None,
) -> tuple[Job, str]:
    """Check the inputs, register the dataset, create the job and queue it atomically;
    submitted_by is the name of the API key that asked (None when the API runs open)."""
    options = await asyncio.to_thread(_inspect_inputs, settings, body)
    source = options.dataset_path or options.captions_path
    assert source is not None  # JobCreate asks for at least one
    dataset_id = await datasets.get_or_create_dataset(session, source)
    job = await lifecycle.create(
        session, dataset_id, options.model_dump(exclude_none=True), api_key_name=submitted_by
    )
    return job, source


async def list_jobs(
    session: AsyncSession,
    settings: AnalysisSettings,
    limit: int,
    offset: int,
    status: lifecycle.JobStatus | None,
) -> tuple[list[schemas.Job], int]:
    """A page of job views, newest first, and how many jobs there are."""
    rows, total = await repository.list_jobs(session, limit, offset, status)
    sets = await _latest_sets(session, [r[0] for r in rows])
    return [to_schema(*r, sets.get(r[0].id), settings) for r in rows], total


async def _latest_sets(session: AsyncSession, jobs: list[Job]) -> dict[uuid.UUID, Sets]:
    """The newest prediction sets of the succeeded ones of jobs (only they can have any), in
    one query for all of them."""
    succeeded = [j.id for j in jobs if j.status == lifecycle.JobStatus.SUCCEEDED]
    return await predictions.latest_sets(session, succeeded, schemas.LATEST_SETS)


async def get_job(
    session: AsyncSession, job_id: uuid.UUID, settings: AnalysisSettings
) -> schemas.Job:
    """The public view of a job: the same for GET, cancel and retry."""
    found = _found(await repository.get_job(session, job_id), job_id)
    sets = (await _latest_sets(session, [found[0]])).get(job_id)
    return to_schema(*found, sets, settings)


async def _moved_view(
    session: AsyncSession,
    job_id: uuid.UUID,
    settings: AnalysisSettings,
    moved: Job | None,
    refusal: str,
) -> schemas.Job:
    """The job's view after a lifecycle move; 404 when it does not exist, 409 (refusal, after
    the job's status) when it was in a status the move does not leave from."""
    if moved is None:
        status = _found(await lifecycle.status_of(session, job_id), job_id)
        raise Conflict(f"job '{job_id}' is {status}{refusal}")
    return await get_job(session, job_id, settings)


async def cancel_job(
    session: AsyncSession, job_id: uuid.UUID, settings: AnalysisSettings
) -> schemas.Job:
    """Queued jobs are cancelled at once; running ones stop at their next batch (at once
    when their worker is gone)."""
    was_running = await lifecycle.status_of(session, job_id) == lifecycle.JobStatus.RUNNING
    moved = await lifecycle.cancel(
        session, job_id, unattended_after_s=settings.worker_stalled_after_s
    )
    if moved is not None and moved.status == lifecycle.JobStatus.CANCELLED:
        # Ended here, not by a worker: the timeline says so (a worker writes its own).
        why = "cancelled: its worker was gone" if was_running else "cancelled before it ran"
        await repository.add_event(session, job_id, lifecycle.JobStatus.CANCELLED, moved.stage, why)
    return await _moved_view(session, job_id, settings, moved, ": it has already ended")


async def retry_job(
    session: AsyncSession, job_id: uuid.UUID, settings: AnalysisSettings
) -> schemas.Job:
    """Queue a failed or cancelled job again; it resumes from what it finished."""
    moved = await lifecycle.retry(session, job_id)
    refusal = "; only failed or cancelled jobs are retried"
    return await _moved_view(session, job_id, settings, moved, refusal)


async def delete_job(
    session: AsyncSession, job_id: uuid.UUID, settings: AnalysisSettings
) -> schemas.Job | None:
    """Delete a job with its results, and the images and captions no other job uses (never
    a dataset's files). A queued job is cancelled and deleted; a running one is asked to stop
    (as cancel does) and its view is returned: it can be deleted once it has ended. None when
    it is deleted; 404 when there is no such job."""
    job = _found(await session.get(Job, job_id), job_id)
    # The dataset before the job, the order scans take them in (no deadlock with a scan).
    await datasets.hold_dataset(session, job.dataset_id, exclusive=True)
    status = await lifecycle.stop_for_deletion(
        session, job_id, unattended_after_s=settings.worker_stalled_after_s
    )
    if status is None:
        raise JobNotFound(f"job '{job_id}' not found")
    if status not in lifecycle.TERMINAL:
        return await get_job(session, job_id, settings)
    await captions.delete_unshared_captions(session, job_id, job.caption_key)
    await datasets.delete_unshared_images(session, job_id)
    await repository.delete_job(session, job_id)
    return None
