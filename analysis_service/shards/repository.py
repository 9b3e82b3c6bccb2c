"""Every SQL statement about job shards: planning a stage's shards, taking one up (its
advisory lock), counting its work, finishing it, and where a stage's shards stand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from analysis_service.models import JobShard

PENDING = "pending"
DONE = "done"


class Span(NamedTuple):
    """A planned shard: its range (see JobShard), how much work it holds, and how much of it
    planning did already."""

    lo: str | None
    hi: str | None
    total: int
    done: int = 0

    @property
    def finished(self) -> bool:
        """Planning did all of its work (it has some: an empty range is still walked, for
        files added since): created done, no one runs it."""
        return 0 < self.done == self.total


@dataclass(frozen=True)
class ShardKey:
    job_id: uuid.UUID
    stage: str
    index: int


class ShardRow(NamedTuple):
    key: ShardKey
    lo: str | None
    hi: str | None
    state: str
    done: int
    total: int


class StageShards(NamedTuple):
    """Where a stage's shards stand: how many are pending, the work done over all of them,
    and an error a runner recorded (None when there is none)."""

    pending: int
    done: int
    error: str | None


def _where(key: ShardKey) -> tuple:
    return (
        JobShard.job_id == key.job_id,
        JobShard.stage == key.stage,
        JobShard.index == key.index,
    )


async def planned(session: AsyncSession, job_id: uuid.UUID, stage: str) -> bool:
    found = await session.scalar(
        select(JobShard.index).where(JobShard.job_id == job_id, JobShard.stage == stage).limit(1)
    )
    return found is not None


async def create(
    session: AsyncSession, job_id: uuid.UUID, stage: str, spans: list[Span], planner: str
) -> None:
    """The stage's shards, once: a coordinator that plans again (it was killed between its
    plan and its commit, then resumed) adds none twice. A shard planning finished is created
    done, by the planner."""
    if not spans:
        return
    rows = [
        {
            "job_id": job_id,
            "stage": stage,
            "index": i,
            "lo": s.lo,
            "hi": s.hi,
            "total": s.total,
            "done": s.done,
            "runs": 0,
            **(
                {"state": DONE, "finished_at": func.now(), "finished_by": planner}
                if s.finished
                else {"state": PENDING, "finished_at": None, "finished_by": None}
            ),
        }
        for i, s in enumerate(spans)
    ]
    await session.execute(insert(JobShard).values(rows).on_conflict_do_nothing())


async def pending_indexes(connection: AsyncConnection, job_id: uuid.UUID, stage: str) -> list[int]:
    rows = await connection.scalars(
        select(JobShard.index)
        .where(JobShard.job_id == job_id, JobShard.stage == stage, JobShard.state == PENDING)
        .order_by(JobShard.index)
    )
    return list(rows)


async def get(connection: AsyncConnection | AsyncSession, key: ShardKey) -> ShardRow | None:
    row = (
        await connection.execute(
            select(JobShard.lo, JobShard.hi, JobShard.state, JobShard.done, JobShard.total).where(
                *_where(key)
            )
        )
    ).first()
    return ShardRow(key, *row) if row is not None else None


async def taken_up(connection: AsyncConnection, key: ShardKey) -> None:
    """A runner starts on the shard: counted, and an error an earlier runner left is cleared."""
    await connection.execute(
        update(JobShard).where(*_where(key)).values(runs=JobShard.runs + 1, error=None)
    )


async def set_done(session: AsyncSession, key: ShardKey, done: int) -> None:
    await session.execute(update(JobShard).where(*_where(key)).values(done=done))


async def add_done(session: AsyncSession, key: ShardKey, work: int) -> None:
    """In SQL, not from a value read before: a runner's senders count side by side."""
    await session.execute(update(JobShard).where(*_where(key)).values(done=JobShard.done + work))


async def finish(session: AsyncSession, key: ShardKey, runner: str) -> None:
    await session.execute(
        update(JobShard)
        .where(*_where(key), JobShard.state == PENDING)
        .values(state=DONE, finished_at=func.now(), finished_by=runner, error=None)
    )


async def record_error(session: AsyncSession, key: ShardKey, message: str) -> None:
    await session.execute(update(JobShard).where(*_where(key)).values(error=message))


async def clear_errors(session: AsyncSession, job_id: uuid.UUID, stage: str) -> None:
    """A new attempt of the job tries the shards that failed before once more."""
    await session.execute(
        update(JobShard)
        .where(JobShard.job_id == job_id, JobShard.stage == stage, JobShard.error.is_not(None))
        .values(error=None)
    )


async def stage_shards(session: AsyncSession, job_id: uuid.UUID, stage: str) -> StageShards:
    row = (
        await session.execute(
            select(
                func.count().filter(JobShard.state == PENDING),
                func.coalesce(func.sum(JobShard.done), 0),
                func.min(JobShard.error),
            ).where(JobShard.job_id == job_id, JobShard.stage == stage)
        )
    ).one()
    return StageShards(int(row[0]), int(row[1]), row[2])


TRY_HOLD = text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))")
"""Take a shard's lock on this connection, unless another connection holds it: whoever runs
the shard holds it, and a killed runner's lock goes with its connection."""
RELEASE = text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))")


def _lock_name(key: ShardKey) -> str:
    return f"shard:{key.job_id}:{key.stage}:{key.index}"


async def try_hold(connection: AsyncConnection, key: ShardKey) -> bool:
    return bool(await connection.scalar(TRY_HOLD, {"name": _lock_name(key)}))


async def release(connection: AsyncConnection, key: ShardKey) -> None:
    await connection.execute(RELEASE, {"name": _lock_name(key)})
