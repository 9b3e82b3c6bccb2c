"""Jobs run to their end inside the benchmark's own process (no worker, no HTTP)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.jobs import schemas, service
from analysis_service.jobs.lifecycle import JobStatus
from analysis_service.pipeline.runner import run_job
from analysis_service.settings import AnalysisSettings


def fake_llm_settings(database_url: str, data_root: Path, llm_url: str) -> AnalysisSettings:
    """Settings of a job whose LLM is a fake on loopback: many calls in flight, and no pause
    before a retry (the fake's faults are the only ones)."""
    return AnalysisSettings(
        database_url=database_url,
        data_roots=str(data_root),
        llm_base_url=llm_url,
        llm_model="fake-llm",
        llm_concurrency=16,
        llm_retry_base_delay_s=0.0,
    )


async def run_to_end(
    settings: AnalysisSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: schemas.JobCreate,
) -> schemas.Job:
    """Submit the job, run it here, and return its view; raise unless it succeeded."""
    async with sessionmaker() as session, session.begin():
        job, _ = await service.create_job(session, settings, body)
    status = await run_job(job.id, settings, sessionmaker)
    async with sessionmaker() as session:
        view = await service.get_job(session, job.id, settings)
    if status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"job {job.id} {status}: {view.error}")
    return view
