"""Jobs run to their end inside the benchmark's own process (no worker, no HTTP)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.jobs import schemas, service
from analysis_service.jobs.lifecycle import JobStatus
from analysis_service.pipeline.runner import run_job
from analysis_service.settings import AnalysisSettings


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
