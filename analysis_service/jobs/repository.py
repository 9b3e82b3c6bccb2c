"""Every SQL statement about jobs except their status (jobs/lifecycle.py): the job view,
progress, counts, events and what a run records on the job row."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from analysis_service.models import CaptionConfig, Dataset, Image, Job, JobEvent, JobImage

# Built once, its id bound at execution: a job view polled often would otherwise spend more
# of the API's CPU building and keying the statement than the database spends running it.
_JOB_VIEW = (
    select(Job, Dataset.root_path, CaptionConfig.info)
    .join(Dataset, Dataset.id == Job.dataset_id)
    .outerjoin(CaptionConfig, CaptionConfig.caption_key == Job.caption_key)
    .where(Job.id == bindparam("job_id"))
)


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> tuple[Job, str, dict | None] | None:
    row = (await session.execute(_JOB_VIEW, {"job_id": job_id})).first()
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


async def delete_job(session: AsyncSession, job_id: uuid.UUID) -> None:
    """The job row; its image links (a trigger, see models.JobImage), structure, assignments
    and events go with it (ON DELETE CASCADE), and its LLM calls stay, without the job (ON
    DELETE SET NULL)."""
    await session.execute(delete(Job).where(Job.id == job_id))


async def events(session: AsyncSession, job_id: uuid.UUID) -> list[JobEvent]:
    rows = await session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    )
    return list(rows)


async def add_event(
    session: AsyncSession, job_id: uuid.UUID, kind: str, stage: str | None, message: str | None
) -> None:
    session.add(JobEvent(job_id=job_id, kind=kind, stage=stage, message=message))


UPDATE_PROGRESS = text(
    """
    UPDATE job SET stage = CAST(:stage AS text), updated_at = now(), progress = jsonb_set(
        progress, ARRAY[CAST(:stage AS text)],
        COALESCE(progress -> CAST(:stage AS text), '{}'::jsonb) || CAST(:patch AS jsonb)
        || CASE WHEN CAST(:started AS boolean) THEN jsonb_build_object(
               'started_at',
               COALESCE(progress -> CAST(:stage AS text) -> 'started_at', to_jsonb(now())))
           ELSE '{}'::jsonb END
        || CASE WHEN CAST(:finished AS boolean)
                THEN jsonb_build_object('finished_at', to_jsonb(now()))
           ELSE '{}'::jsonb END)
    WHERE id = :id
    """
)
"""Merge a patch into progress[stage] in one statement (concurrent senders each add theirs);
started stamps started_at unless an earlier attempt did, finished stamps finished_at."""


async def update_progress(
    session: AsyncSession,
    job_id: uuid.UUID,
    stage: str,
    patch: dict[str, Any],
    *,
    started: bool = False,
    finished: bool = False,
) -> None:
    params = {
        "stage": stage,
        "patch": json.dumps(patch),
        "started": started,
        "finished": finished,
        "id": job_id,
    }
    await session.execute(UPDATE_PROGRESS, params)


ADD_TO_DONE = text(
    """
    UPDATE job SET updated_at = now(), progress = jsonb_set(
        progress, ARRAY[CAST(:stage AS text), 'done'],
        to_jsonb(COALESCE(CAST(progress #>> ARRAY[CAST(:stage AS text), 'done'] AS bigint), 0)
                 + :delta))
    WHERE id = :id
    """
)
"""Add to progress[stage].done in one statement: the shards of a stage, run side by side,
each add their own work (Postgres orders the updates on the row; none is lost)."""


async def add_to_done(session: AsyncSession, job_id: uuid.UUID, stage: str, delta: int) -> None:
    """Call with progress[stage] present (the stage was started)."""
    if delta:
        await session.execute(ADD_TO_DONE, {"stage": stage, "delta": delta, "id": job_id})


async def progress(session: AsyncSession, job_id: uuid.UUID) -> dict[str, Any]:
    return dict(await session.scalar(select(Job.progress).where(Job.id == job_id)) or {})


async def caption_key(session: AsyncSession, job_id: uuid.UUID) -> str | None:
    """The caption key the job's run chose (recorded before its caption stage fans out)."""
    return await session.scalar(select(Job.caption_key).where(Job.id == job_id))


#: What a run may record on its job row; its status and attempts belong to the lifecycle.
RUN_FACTS = frozenset({"caption_key", "reasoner", "llm_estimate"})


async def record_run_facts(session: AsyncSession, job_id: uuid.UUID, **facts: Any) -> None:
    """Facts a run learns about its job: the caption key it used, the reasoner, the LLM cost
    estimate."""
    if unknown := set(facts) - RUN_FACTS:
        raise ValueError(f"a run does not record {sorted(unknown)} (see jobs.lifecycle)")
    await session.execute(update(Job).where(Job.id == job_id).values(**facts))


UPDATE_COUNTS = text(
    """
    UPDATE job SET
        images = c.images,
        invalid = c.invalid,
        valid = c.images - c.invalid
    FROM (
        SELECT count(*) AS images,
               count(*) FILTER (WHERE i.invalid_reason IS NOT NULL
                                   OR ji.caption_error IS NOT NULL) AS invalid
        FROM job_image ji JOIN image i ON i.id = ji.image_id
        WHERE ji.job_id = :job_id
    ) c
    WHERE job.id = :job_id
    """
)
"""The job's image totals: every file it saw, and those skipped as invalid or uncaptioned."""


async def update_counts(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.execute(UPDATE_COUNTS, {"job_id": job_id})


TRY_LOCK_RUN = text("SELECT pg_try_advisory_lock(:key)")
"""Take a job's run lock on this connection, unless another connection holds it."""
UNLOCK_RUN = text("SELECT pg_advisory_unlock(:key)")
"""Give a job's run lock back."""


def _run_lock_key(job_id: uuid.UUID) -> int:
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


async def try_lock_run(connection: AsyncConnection, job_id: uuid.UUID) -> bool:
    """Whether this connection now alone may run the job (until unlock_run or it closes)."""
    return bool(await connection.scalar(TRY_LOCK_RUN, {"key": _run_lock_key(job_id)}))


async def unlock_run(connection: AsyncConnection, job_id: uuid.UUID) -> None:
    await connection.execute(UNLOCK_RUN, {"key": _run_lock_key(job_id)})
