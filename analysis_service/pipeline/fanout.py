"""A stage split into shards that any worker runs: fan-out and fan-in on the queue and Postgres.

The job's run (the coordinator) plans a stage's shards, writes them and queues one task per
shard in one transaction, then works on the stage's pending shards itself until every one is
done: a lone worker that runs one task at a time still finishes the job, and never waits for
a slot it holds. Whoever runs a shard holds the shard's session-level advisory lock on a
connection of its own: a second runner of it (its queued task, or the coordinator) passes it
by, and a runner killed outright loses the lock with its connection, so the coordinator, which
tries the pending shards again while it waits, takes the shard up itself. A shard's work is
idempotent and resumable as a whole job's is (it is the stage's own batch code on a range),
and a finished shard is never run again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from analysis_service.jobs import repository as jobs
from analysis_service.pipeline.context import RunContext, StageFailed
from analysis_service.queue import enqueue_run_shards
from analysis_service.shards import repository as shards
from analysis_service.shards.repository import PENDING, ShardKey, ShardRow, Span, StageShards

logger = logging.getLogger(__name__)

#: Who runs shards here, as a finished shard records it.
RUNNER = f"{socket.gethostname()}:{os.getpid()}"
#: How often a coordinator with no shard left to take looks again: for the stage's end, for a
#: shard whose runner died, for a cancel.
WAIT_S = 0.25


@dataclass(frozen=True)
class Plan:
    """A stage's shards, and its progress before any of them ran (done: work an earlier job
    already did, such as captions of the same bytes, and the work of shards planning did
    entirely)."""

    spans: list[Span]
    total: int
    done: int = 0


@dataclass
class HeldShard:
    """A shard this runner holds (its advisory lock), with what its work counts."""

    ctx: RunContext
    row: ShardRow
    done: int = field(init=False)

    def __post_init__(self) -> None:
        self.done = self.row.done

    @property
    def key(self) -> ShardKey:
        return self.row.key

    @property
    def lo(self) -> str | None:
        return self.row.lo

    @property
    def hi(self) -> str | None:
        return self.row.hi

    @property
    def total(self) -> int:
        return self.row.total

    async def restart(self, done: int) -> None:
        """The shard's work starts (again) with `done` already done; the job's progress loses
        what an earlier runner of the shard had counted and gains this."""
        if done == self.done:
            # Nothing to change (a shard run for the first time): no transaction. What the
            # shard's row says was read under the shard's lock, which this runner holds.
            return
        async with self.ctx.sessionmaker() as session, session.begin():
            await shards.set_done(session, self.key, done)
            await jobs.add_to_done(session, self.ctx.job_id, self.key.stage, done - self.done)
        self.done = done

    async def count_in(self, session: AsyncSession, work: int) -> None:
        """Count work in the caller's transaction, the one that stores it."""
        await shards.add_done(session, self.key, work)
        await jobs.add_to_done(session, self.ctx.job_id, self.key.stage, work)
        self.done += work


ShardWork = Callable[[HeldShard], Awaitable[None]]


async def _release(connection: AsyncConnection, key: ShardKey) -> None:
    try:
        await shards.release(connection, key)
    except BaseException:
        # A lock left on a pooled connection would keep the shard from everyone else.
        await connection.invalidate()
        raise


@asynccontextmanager
async def holding(ctx: RunContext, keys: list[ShardKey]) -> AsyncIterator[HeldShard | None]:
    """The first of keys that is pending and that no one else runs, held for the block (None:
    there is none). The lock is taken on a connection of its own in autocommit, so no
    transaction stays open while the shard runs."""
    async with ctx.sessionmaker() as session:
        connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        held = None
        for key in keys:
            if not await shards.try_hold(connection, key):
                continue
            # Read under the lock: a runner marks its shard done before it lets go.
            row = await shards.get(connection, key)
            if row is not None and row.state == PENDING:
                await shards.taken_up(connection, key)
                held = HeldShard(ctx, row)
                break
            await _release(connection, key)
        try:
            yield held
        finally:
            if held is not None:
                await _release(connection, held.key)


async def run_held(ctx: RunContext, held: HeldShard, work: ShardWork) -> None:
    """The shard's work, then the shard marked done (before its lock goes)."""
    await work(held)
    async with ctx.sessionmaker() as session, session.begin():
        await shards.finish(session, held.key, RUNNER)


async def record_error(ctx: RunContext, key: ShardKey, message: str) -> None:
    """A shard task could not finish its shard: the job's run fails the job with this."""
    async with ctx.sessionmaker() as session, session.begin():
        await shards.record_error(session, key, message)


async def _pending_keys(ctx: RunContext, stage: str) -> list[ShardKey]:
    async with ctx.sessionmaker() as session:
        connection = await session.connection()
        indexes = await shards.pending_indexes(connection, ctx.job_id, stage)
    return [ShardKey(ctx.job_id, stage, i) for i in indexes]


async def _stage_shards(ctx: RunContext, stage: str) -> StageShards:
    async with ctx.sessionmaker() as session:
        return await shards.stage_shards(session, ctx.job_id, stage)


async def _fan_out(
    ctx: RunContext, stage: str, plan: Callable[[], Awaitable[Plan]], fan_out: bool
) -> None:
    """Write the stage's shards and queue them, or, for a resumed run whose shards exist,
    queue again the ones still pending (their tasks may have run and found them held by a
    runner that died since)."""
    async with ctx.sessionmaker() as session:
        planned = await shards.planned(session, ctx.job_id, stage)
    made = None if planned else await plan()
    async with ctx.sessionmaker() as session, session.begin():
        if made is not None:
            await shards.create(session, ctx.job_id, stage, made.spans, RUNNER)
            progress = {"done": made.done, "total": made.total}
            await jobs.update_progress(session, ctx.job_id, stage, progress)
            pending = [i for i, span in enumerate(made.spans) if not span.finished]
        else:
            await shards.clear_errors(session, ctx.job_id, stage)
            pending = await shards.pending_indexes(await session.connection(), ctx.job_id, stage)
        if fan_out:
            # The coordinator starts on the first one itself at once.
            await enqueue_run_shards(session, ctx.job_id, stage, pending[1:])
    if made is not None and len(made.spans) > 1:
        queued = max(0, len(pending) - 1) if fan_out else 0
        logger.info("job %s %s: %d shards, %d queued", ctx.job_id, stage, len(made.spans), queued)


async def run_stage(
    ctx: RunContext,
    stage: str,
    plan: Callable[[], Awaitable[Plan]],
    work: ShardWork,
    *,
    fan_out: bool = True,
) -> StageShards:
    """Fan the stage out (plan is called only when its shards are not planned yet), work on
    its shards alongside whoever else does, and return once every shard is done. A shard
    another runner could not finish fails the stage with that runner's error. fan_out=False:
    the shards are run here only, one after another."""
    await _fan_out(ctx, stage, plan, fan_out)
    while True:
        state = await _stage_shards(ctx, stage)
        if state.error is not None:
            raise StageFailed(state.error)
        if state.pending == 0:
            return state
        async with holding(ctx, await _pending_keys(ctx, stage)) as held:
            if held is not None:
                await run_held(ctx, held, work)
                continue
        # Every pending shard is being run elsewhere: wait for them.
        await ctx.check_cancelled()
        await asyncio.sleep(WAIT_S)
