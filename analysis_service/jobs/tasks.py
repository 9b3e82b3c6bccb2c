"""Queued work: one task that runs (or resumes) a job by id."""

from __future__ import annotations

import uuid

import procrastinate

from analysis_service.pipeline.runner import run_job as run_job_pipeline

blueprint = procrastinate.Blueprint()


@blueprint.task(name="run_job", queue="jobs", pass_context=True)
async def run_job(context: procrastinate.JobContext, job_id: str) -> None:
    """Safe to run twice: every stage resumes from what is stored."""
    extra = context.additional_context or {}
    await run_job_pipeline(uuid.UUID(job_id), extra["settings"], extra["sessionmaker"])
