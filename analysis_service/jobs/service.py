"""Job logic: submission checks, state changes, and the public view of a job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.datasets import repository as datasets
from analysis_service.datasets.captions_file import check_file
from analysis_service.datasets.layout import check_layout, iter_files
from analysis_service.jobs import lifecycle, repository, schemas
from analysis_service.models import Job
from analysis_service.reasoners.estimate import IMAGE_CAPTION_TOKENS, Group, estimate
from analysis_service.reasoners.factory import discovery_steps
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


def to_schema(
    job: Job,
    dataset_path: str,
    caption_info: dict | None,
    spent: dict | None = None,
    llm_model: str | None = None,
) -> schemas.Job:
    end = job.finished_at or (datetime.now(UTC) if job.started_at else None)
    duration = (end - job.started_at).total_seconds() if end and job.started_at else None
    engine = f"{caption_info['engine']}/{caption_info['model']}" if caption_info else None
    options = job.options or {}
    return schemas.Job(
        id=job.id,
        status=lifecycle.JobStatus(job.status),
        stage=job.stage,
        dataset_path=dataset_path,
        progress={k: schemas.StageProgress(**v) for k, v in (job.progress or {}).items()},
        images=job.images,
        valid=job.valid,
        invalid=job.invalid,
        seed=int(options.get("seed", 0)),
        mode=options.get("mode", "per_class"),
        criterion=options.get("criterion"),
        captions_path=options.get("captions_path"),
        caption_engine=engine,
        reasoner=job.reasoner,
        llm=schemas.LLMUsage(
            model=llm_model,
            estimate=job.llm_estimate,
            spent=schemas.LLMSpent(**(spent or {})),
            budget=options.get("token_budget"),
        ),
        error=job.error,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        duration_s=duration,
    )


def _llm_model(settings: AnalysisSettings) -> str | None:
    return settings.llm_model if settings.llm_base_url else None


def _estimate(
    settings: AnalysisSettings, body: schemas.JobCreate, groups: list[Group]
) -> dict[str, int] | None:
    if not settings.llm_base_url:
        return None  # the offline reasoner makes no LLM calls
    if body.mode == "organization":
        groups = [Group(sum(g.images for g in groups), groups[0].caption_tokens)] if groups else []
    config = discovery_steps(settings, body.model_dump())
    return estimate(config, groups, body.criterion is not None, body.num_attributes)


def _check_budget(body: schemas.JobCreate, cost: dict[str, int] | None) -> None:
    if cost and body.token_budget is not None and body.token_budget < cost["fixed_tokens"]:
        raise InvalidRequest(
            f"token_budget {body.token_budget} is below the estimate for the fixed steps "
            f"(dimensions, attributes, refinement): {cost['fixed_tokens']} tokens in "
            f"{cost['fixed_calls']} calls; the whole job is estimated at {cost['tokens']} "
            f"tokens in {cost['calls']} calls"
        )


def _folder_groups(root: Path) -> list[Group]:
    counts: dict[str | None, int] = {}
    for _, class_name in iter_files(root):
        if class_name is not None:
            counts[class_name] = counts.get(class_name, 0) + 1
    return [Group(n, IMAGE_CAPTION_TOKENS) for n in counts.values()]


async def create_job(
    session: AsyncSession, settings: AnalysisSettings, body: schemas.JobCreate
) -> tuple[Job, str]:
    """Check the inputs, register the dataset, create the job and queue it atomically."""
    roots = settings.data_root_paths
    options: dict = body.model_dump(exclude_none=True, exclude={"dataset_path", "captions_path"})
    root: Path | None = None
    groups: list[Group] = []
    if body.dataset_path is not None:
        root = resolve_folder_inside_roots(body.dataset_path, roots)
        check_layout(root)
        options["dataset_path"] = str(root)
        groups = _folder_groups(root)
    if body.captions_path is not None:
        path = resolve_file_inside_roots(body.captions_path, roots)
        known = {rel for rel, cls in iter_files(root) if cls} if root else None
        if known is not None:
            known |= {Path(rel).name for rel in known}
        summary = check_file(path, known)
        options["captions_path"] = str(path)
        options["captions_rows"] = summary.rows
        tokens = max(1.0, summary.mean_caption_chars / 4)
        groups = [Group(n, tokens) for n in summary.labels.values()]
    cost = _estimate(settings, body, groups)
    _check_budget(body, cost)
    dataset_id = await datasets.get_or_create_dataset(
        session, str(root) if root else options["captions_path"]
    )
    job = await lifecycle.create(session, dataset_id, options)
    job.llm_estimate = cost
    return job, str(root) if root else options["captions_path"]


async def get_job(
    session: AsyncSession, job_id: uuid.UUID, settings: AnalysisSettings
) -> schemas.Job:
    """The public view of a job: the same for GET, cancel and retry."""
    found = _found(await repository.get_job(session, job_id), job_id)
    spent = (await repository.llm_spent(session, [job_id])).get(job_id)
    return to_schema(*found, spent, _llm_model(settings))


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
    """Queued jobs are cancelled at once; running ones stop at their next batch."""
    moved = await lifecycle.cancel(session, job_id)
    return await _moved_view(session, job_id, settings, moved, ": it has already ended")


async def retry_job(
    session: AsyncSession, job_id: uuid.UUID, settings: AnalysisSettings
) -> schemas.Job:
    """Queue a failed or cancelled job again; it resumes from what it finished."""
    moved = await lifecycle.retry(session, job_id)
    refusal = "; only failed or cancelled jobs are retried"
    return await _moved_view(session, job_id, settings, moved, refusal)
