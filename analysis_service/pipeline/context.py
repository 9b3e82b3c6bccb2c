"""What every stage of a running job shares: settings, sessions, progress, cancellation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.jobs import lifecycle
from analysis_service.jobs import repository as jobs
from analysis_service.jobs.lifecycle import Stage, StageState
from analysis_service.jobs.schemas import JobOptions
from analysis_service.settings import AnalysisSettings


class JobCancelled(Exception):
    """The job was cancelled (or, seen from a shard, is no longer running)."""


class StageFailed(Exception):
    """A stage cannot go on; the message is shown to the user as the job's error."""


@dataclass(frozen=True)
class Transports:
    """What replaces the network in tests (fakes speaking the real protocols)."""

    caption: httpx.AsyncBaseTransport | None = None
    llm: httpx.AsyncBaseTransport | None = None


@dataclass
class RunContext:
    """One run (attempt) of one job, as its stages see it."""

    job_id: uuid.UUID
    attempt: int
    dataset_id: uuid.UUID
    settings: AnalysisSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    options: JobOptions
    #: The stage the run is in, for its events.
    stage: Stage | None = None

    async def check_cancelled(self, session: AsyncSession | None = None) -> None:
        """Called between batches: a cancel request (or the job's end) stops the work there.
        In the caller's session when it has one open for its next batch (one connection
        taken from the pool rather than two)."""
        if session is None:
            async with self.sessionmaker() as own:
                return await self.check_cancelled(own)
        if await lifecycle.stop_requested(session, self.job_id):
            raise JobCancelled()

    async def update_stage(
        self, stage: Stage, *, started: bool = False, finished: bool = False, **patch: Any
    ) -> None:
        """Merge patch into progress[stage]. started stamps started_at unless an earlier
        attempt already did (a resumed stage keeps its start); finished stamps finished_at."""
        async with self.sessionmaker() as session, session.begin():
            await jobs.update_progress(
                session, self.job_id, stage, patch, started=started, finished=finished
            )

    async def update_stage_in(self, session: AsyncSession, stage: Stage, **patch: Any) -> None:
        """update_stage in the caller's transaction: progress committed with the work it
        counts, and one commit where there would be two."""
        await jobs.update_progress(session, self.job_id, stage, patch)

    async def start_stage(self, stage: Stage, **patch: Any) -> None:
        self.stage = stage
        await self.update_stage(stage, started=True, state=StageState.RUNNING, **patch)

    async def finish_stage(self, stage: Stage, **patch: Any) -> None:
        await self.update_stage(stage, finished=True, state=StageState.DONE, **patch)

    async def event(self, kind: str, message: str | None = None) -> None:
        """A line of the job's timeline, stamped with the stage the run is in."""
        async with self.sessionmaker() as session, session.begin():
            await jobs.add_event(session, self.job_id, kind, self.stage, message)

    async def stage_done(self, stage: Stage) -> bool:
        async with self.sessionmaker() as session:
            progress = await jobs.progress(session, self.job_id)
        return progress.get(stage, {}).get("state") == StageState.DONE

    async def record(self, **facts: Any) -> None:
        """Store facts the run learned about its job (caption key, reasoner, estimate)."""
        async with self.sessionmaker() as session, session.begin():
            await jobs.record_run_facts(session, self.job_id, **facts)
