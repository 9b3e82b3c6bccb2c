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

    async def update_stage(self, stage: str, **patch: Any) -> None:
        """Merge patch into progress[stage]; 'now' values become server timestamps."""
        stamped = {k: v for k, v in patch.items() if v != "now"}
        now_keys = [k for k, v in patch.items() if v == "now"]
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                text(
                    "UPDATE job SET progress = jsonb_set(progress, ARRAY[:stage], "
                    "COALESCE(progress -> :stage, '{}'::jsonb) || CAST(:patch AS jsonb) || "
                    "(SELECT COALESCE(jsonb_object_agg(k, to_jsonb(now())), '{}'::jsonb) "
                    " FROM unnest(CAST(:now_keys AS text[])) AS k)), "
                    "stage = :stage, updated_at = now() WHERE id = :id"
                ),
                {
                    "stage": stage,
                    "patch": json.dumps(stamped),
                    "now_keys": now_keys,
                    "id": self.job_id,
                },
            )

    async def event(self, kind: str, stage: str | None, message: str | None = None) -> None:
        async with self.sessionmaker() as session, session.begin():
            session.add(JobEvent(job_id=self.job_id, kind=kind, stage=stage, message=message))

    async def stage_done(self, stage: str) -> bool:
        async with self.sessionmaker() as session:
            progress = await session.scalar(select(Job.progress).where(Job.id == self.job_id))
        return bool(progress and progress.get(stage, {}).get("state") == "done")
