"""The scan stage: walk the dataset, hash and validate every file, remember what this job saw.

A file whose size, mtime, ctime and inode match the stored version of the same folder is not
read again, so re-submitting a folder (or resuming a killed job) costs one stat per file and
a lookup and a link in Postgres. A changed file gets a new version (image row); earlier jobs
keep the versions they saw, so their results never change.

Batches flow through two steps that overlap: while one batch is stored (Postgres, on the
event loop), the next one is walked and stat'ed, compared with its stored versions (the ones
still true linked to the job in the same statement), and its changed files are read in
threads. The links of unchanged files are committed as they are compared, a batch's new
versions with the progress that counts them, so a killed worker loses at most the batches in
flight, and its resumed scan keeps the versions it had already linked.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis_service.datasets import repository as datasets
from analysis_service.datasets.layout import iter_files
from analysis_service.datasets.scanner import ScannedFile, examine_all, stat_file
from analysis_service.jobs import lifecycle
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline.context import JobCancelled, RunContext
from shared.concurrency import run_all, task_group

logger = logging.getLogger(__name__)

Entry = tuple[str, str | None]

# Connections a batch's comparison with its stored versions is spread over: a re-scan of an
# unchanged folder is Postgres' work (a lookup and a link per file), and on one connection
# it keeps one core busy.
_LINK_PARTS = 2


def _next_stats(files: Iterator[Entry], root: str, size: int) -> list[ScannedFile]:
    """The next batch of the walk, stat'ed (in a thread: both touch the disk)."""
    return [stat_file(root, rel, cls) for rel, cls in itertools.islice(files, size)]


def _count(root: Path) -> int:
    return sum(1 for _ in iter_files(root))


def _chunks(files: list[ScannedFile], parts: int) -> list[list[ScannedFile]]:
    return [chunk for i in range(parts) if (chunk := files[i::parts])]


@dataclass
class _Batch:
    changed: list[ScannedFile]
    files: int


async def _link_unchanged(ctx: RunContext, stats: list[ScannedFile]) -> list[ScannedFile]:
    """Link the stored versions still true to the job, each part of the batch in a
    transaction of its own, side by side; the files that need a new version, in walk order."""

    async def link(part: list[ScannedFile]) -> list[ScannedFile]:
        async with ctx.sessionmaker() as session:
            return await datasets.link_unchanged(session, ctx.dataset_id, ctx.job_id, part)

    step = -(-len(stats) // _LINK_PARTS)
    found = await run_all(*(link(stats[i : i + step]) for i in range(0, len(stats), step)))
    return [f for part in found for f in part]


async def _examine_batch(
    ctx: RunContext, root: Path, stats: list[ScannedFile], pool: ThreadPoolExecutor, threads: int
) -> _Batch:
    """The files that need a new version, hashed and validated; the stored versions still
    true are linked to the job on the way (committed here: the job keeps what it saw)."""
    changed = await _link_unchanged(ctx, stats)
    todo = [s for s in changed if s.invalid_reason is None]
    limits, roots = ctx.settings.image_limits, ctx.settings.data_root_paths
    loop = asyncio.get_running_loop()
    # Reading, hashing and decoding release the GIL: a chunk per thread keeps every core busy,
    # and a call per chunk (not per file) keeps the event loop's wake-ups few.
    await run_all(
        *(
            loop.run_in_executor(pool, examine_all, root, chunk, limits, roots)
            for chunk in _chunks(todo, threads)
        )
    )
    return _Batch(changed, len(stats))


async def _store(ctx: RunContext, batch: _Batch, progress: dict[str, Any]) -> None:
    """A batch's versions and links, and the progress that counts them, in one commit; then
    stop if a cancel was asked for (read in the same transaction: no round trip of its own)."""
    async with ctx.sessionmaker() as session, session.begin():
        await datasets.link_versions(session, ctx.dataset_id, ctx.job_id, batch.changed, [])
        await ctx.update_stage_in(session, Stage.SCAN, **progress)
        cancelled = await lifecycle.cancel_requested(session, ctx.job_id)
    if cancelled:
        raise JobCancelled()


@dataclass
class _ScanPass:
    """A reader that walks, compares and examines batches into a small queue, and a writer
    that stores them: reading the next batch overlaps storing the last."""

    ctx: RunContext
    root: Path
    pool: ThreadPoolExecutor
    threads: int

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=2)
        self.done = 0
        self.stored_versions = 0

    async def run(self, counting: asyncio.Future[int]) -> None:
        async with task_group() as group:
            group.create_task(self._reader())
            group.create_task(self._writer(counting))

    async def _reader(self) -> None:
        loop = asyncio.get_running_loop()
        files, root = iter_files(self.root), str(self.root)
        size = self.ctx.settings.ingest_batch_size
        upcoming = loop.run_in_executor(self.pool, _next_stats, files, root, size)
        while stats := await upcoming:
            # The next batch is walked and stat'ed while this one is compared and read.
            upcoming = loop.run_in_executor(self.pool, _next_stats, files, root, size)
            batch = await _examine_batch(self.ctx, self.root, stats, self.pool, self.threads)
            await self.queue.put(batch)
        await self.queue.put(None)

    async def _writer(self, counting: asyncio.Future[int]) -> None:
        total_told = False
        await self.ctx.check_cancelled()
        while (batch := await self.queue.get()) is not None:
            patch: dict[str, Any] = {"done": self.done + batch.files}
            if counting.done() and not total_told:
                patch["total"], total_told = counting.result(), True
            await _store(self.ctx, batch, patch)
            self.done += batch.files
            self.stored_versions += len(batch.changed)


async def run(ctx: RunContext, root: Path) -> None:
    await ctx.start_stage(Stage.SCAN, done=0)
    # Walking and stat'ing the folder touch the disk: in threads, never on the event loop.
    # The count (for progress) runs beside the scan rather than before it.
    counting = asyncio.ensure_future(asyncio.to_thread(_count, root))
    # More readers than cores: a file not in the page cache is a wait on the disk, and a
    # cold dataset is read several times faster with reads in flight side by side (on a warm
    # one, four per core still beat one: Python's share of each file overlaps another's I/O).
    threads = min(32, 4 * (os.cpu_count() or 2))
    pool = ThreadPoolExecutor(max_workers=threads + 1, thread_name_prefix="scan")
    work = _ScanPass(ctx, root, pool, threads)
    try:
        await work.run(counting)
        await counting
    finally:
        counting.cancel()
        # Never wait here for a chunk still being read (that would block the event loop):
        # a cancelled scan leaves it to finish on its own.
        pool.shutdown(wait=False, cancel_futures=True)
    async with ctx.sessionmaker() as session, session.begin():
        await datasets.analyze_images(session, versions=work.stored_versions > 0)
    await ctx.finish_stage(Stage.SCAN, done=work.done, total=work.done)
    logger.info("scanned %d files under %s", work.done, root)
