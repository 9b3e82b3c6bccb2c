"""What every stage of a running job shares: settings, sessions, progress, cancellation."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.models import Job, JobEvent
from analysis_service.settings import AnalysisSettings

_UPDATE_STAGE = text(
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


class JobCancelled(Exception):
    """The job was cancelled."""


class StageFailed(Exception):
    """A stage cannot go on; the message is shown to the user as the job's error."""


@dataclass
class JobContext:
    job_id: uuid.UUID
    dataset_id: uuid.UUID
    settings: AnalysisSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.options.get("seed", 0))

    async def check_cancelled(self) -> None:
        """Called between batches: a cancel request stops the job there."""
        async with self.sessionmaker() as session:
            flag = await session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
        if flag:
            raise JobCancelled()

    async def update_stage(
        self, stage: str, *, started: bool = False, finished: bool = False, **patch: Any
    ) -> None:
        """Merge patch into progress[stage]. started stamps started_at unless an earlier
        attempt already did (a resumed stage keeps its start); finished stamps finished_at."""
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                _UPDATE_STAGE,
                {
                    "stage": stage,
                    "patch": json.dumps(patch),
                    "started": started,
                    "finished": finished,
                    "id": self.job_id,
                },
            )

    async def start_stage(self, stage: str, **patch: Any) -> None:
        await self.update_stage(stage, started=True, state="running", **patch)

    async def finish_stage(self, stage: str, **patch: Any) -> None:
        await self.update_stage(stage, finished=True, state="done", **patch)

    async def event(self, kind: str, stage: str | None, message: str | None = None) -> None:
        async with self.sessionmaker() as session, session.begin():
            session.add(JobEvent(job_id=self.job_id, kind=kind, stage=stage, message=message))

    async def stage_done(self, stage: str) -> bool:
        async with self.sessionmaker() as session:
            progress = await session.scalar(select(Job.progress).where(Job.id == self.job_id))
        return bool(progress and progress.get(stage, {}).get("state") == "done")
