"""Every SQL query about jobs."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import CaptionConfig, Dataset, Image, Job, JobEvent, JobImage, LLMCall


async def add_job(session: AsyncSession, dataset_id: uuid.UUID, options: dict) -> Job:
    job = Job(dataset_id=dataset_id, status="queued", options=options, progress={})
    session.add(job)
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> tuple[Job, str, dict | None] | None:
    row = (
        await session.execute(
            select(Job, Dataset.root_path, CaptionConfig.info)
            .join(Dataset, Dataset.id == Job.dataset_id)
            .outerjoin(CaptionConfig, CaptionConfig.caption_key == Job.caption_key)
            .where(Job.id == job_id)
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


async def list_jobs(
    session: AsyncSession, limit: int, offset: int, status: str | None
) -> tuple[list[tuple[Job, str, dict | None]], int]:
    query = (
        select(Job, Dataset.root_path, CaptionConfig.info)
        .join(Dataset, Dataset.id == Job.dataset_id)
        .outerjoin(CaptionConfig, CaptionConfig.caption_key == Job.caption_key)
    )
    count = select(func.count()).select_from(Job)
    if status:
        query = query.where(Job.status == status)
        count = count.where(Job.status == status)
    rows = await session.execute(
        query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    )
    total = int(await session.scalar(count) or 0)
    return [(r[0], r[1], r[2]) for r in rows], total


async def invalid_images(
    session: AsyncSession, job_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[tuple[str, str | None, str]], int]:
    reason = func.coalesce(Image.invalid_reason, JobImage.caption_error)
    where = (JobImage.job_id == job_id) & reason.is_not(None)
    base = select(JobImage).join(Image, Image.id == JobImage.image_id).where(where)
    rows = await session.execute(
        select(Image.relpath, Image.class_name, reason)
        .join(JobImage, Image.id == JobImage.image_id)
        .where(where)
        .order_by(Image.relpath)
        .limit(limit)
        .offset(offset)
    )
    total = int(await session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    return [(r[0], r[1], r[2]) for r in rows], total


async def llm_spent(session: AsyncSession, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    """Calls and tokens per job, from the call log."""
    if not job_ids:
        return {}
    prompt = func.coalesce(func.sum(LLMCall.prompt_tokens), 0)
    completion = func.coalesce(func.sum(LLMCall.completion_tokens), 0)
    rows = await session.execute(
        select(LLMCall.job_id, func.count(), prompt, completion)
        .where(LLMCall.job_id.in_(job_ids))
        .group_by(LLMCall.job_id)
    )
    return {
        job_id: {
            "calls": calls,
            "prompt_tokens": int(p or 0),
            "completion_tokens": int(c or 0),
            "tokens": int(p or 0) + int(c or 0),
        }
        for job_id, calls, p, c in rows
        if job_id is not None
    }


async def events(session: AsyncSession, job_id: uuid.UUID) -> list[JobEvent]:
    rows = await session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    )
    return list(rows)
