"""The scan stage: walk the dataset, hash and validate every file, remember what this job saw.

A file whose size, mtime, ctime and inode match the stored version of the same folder is not
read again, so re-submitting a folder (or resuming a killed job) costs one stat per file and
a lookup and a link in Postgres. A changed file gets a new version (image row); earlier jobs
keep the versions they saw, so their results never change.

The walk is cut into shards of SHARD_SIZE files (ranges of the walk's order, see
datasets.layout.walk_key) that any worker scans (pipeline/fanout.py). On a folder scanned
before, the plan's walk also stats the files and links the versions still true, and a shard
with no file left to read is created done: a re-scan of an unchanged folder runs no shard
(running one costs a queued task and a dozen round trips, more than its thousand links).

Within a shard, batches flow through two steps that overlap: while one batch is stored
(Postgres, on the event loop), the next one is walked and stat'ed, compared with its stored
versions (the ones still true linked to the job in the same statement), and its changed
files are read, hashed and decoded in the worker's scanning processes (SCAN_PROCESSES, one per
core by default: in threads of the worker, Python's share of that work held one GIL, and a
worker used one core however many it had). The links of unchanged files are committed as
they are compared, a batch's new versions with the progress that counts them, so a killed
worker loses at most the batches in flight, and the shard's next runner keeps the versions it
had already linked.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from analysis_service.datasets import repository as datasets
from analysis_service.datasets import scanner
from analysis_service.datasets.layout import iter_files
from analysis_service.datasets.scanner import ScannedFile, examine_chunk, stat_all
from analysis_service.jobs import lifecycle
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline import fanout
from analysis_service.pipeline.context import JobCancelled, RunContext, StageFailed, Transports
from analysis_service.pipeline.fanout import HeldShard, Plan, ShardWork
from analysis_service.shards.repository import Span
from shared.concurrency import run_all, split_evenly, task_group
from shared.imaging import ImageLimits
from shared.processes import ReplaceablePool, isolating, within

logger = logging.getLogger(__name__)

Entry = tuple[str, str | None]

# Connections a batch's comparison with its stored versions is spread over: a re-scan of an
# unchanged folder is Postgres' work (a lookup and a link per file), and on one connection
# it keeps one core busy.
_LINK_PARTS = 2


def _next_stats(files: Iterator[Entry], root: str, size: int) -> list[ScannedFile]:
    """The next batch of the walk, stat'ed (in a thread: both touch the disk)."""
    return stat_all(root, itertools.islice(files, size))


def _storable(relpath: str) -> bool:
    """Whether a path can be a shard's bound: a name that is not UTF-8 (kept by Python as
    lone surrogates) cannot be stored; such a file stays in the shard before."""
    try:
        relpath.encode()
    except UnicodeEncodeError:
        return False
    return True


class _Cut:
    """Shards of `size` files in the walk's order, each from its first file to the next
    one's first (the first open below, the last above: files added later fall in one). A
    shard of files none of which needs reading is planned done (Span.finished)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.spans: list[Span] = []
        self.walked = self._files = 0
        self._first: str | None = None
        self._to_read = False

    def add(self, relpath: str, to_read: bool) -> None:
        if self._files >= self.size and _storable(relpath):
            self._close(relpath)
            self._first, self._files, self._to_read = relpath, 0, False
        self._files += 1
        self.walked += 1
        self._to_read = self._to_read or to_read

    def _close(self, hi: str | None) -> None:
        done = 0 if self._to_read else self._files
        self.spans.append(Span(self._first, hi, self._files, done))

    def plan(self) -> Plan:
        self._close(None)
        return Plan(self.spans, total=self.walked, done=sum(span.done for span in self.spans))


def _cut_walk(root: Path, size: int) -> Plan:
    """Every file of a folder new to the database needs reading."""
    cut = _Cut(size)
    for rel, _ in iter_files(root):
        cut.add(rel, True)
    return cut.plan()


def _next_walked(files: Iterator[Entry], root: str, size: int) -> list[tuple[str, ScannedFile]]:
    """The next batch of the walk with each file's stat (its relpath as walked: a name that
    is not UTF-8 is stored escaped, and cannot bound a shard)."""
    walked = list(itertools.islice(files, size))
    return list(zip((rel for rel, _ in walked), stat_all(root, walked), strict=True))


async def _linking_plan(ctx: RunContext, root: Path, size: int) -> Plan:
    """Walk, stat and compare every file with its stored version, the ones still true linked
    to the job on the way (see datasets.link_unchanged): only shards with a file to read are
    left to run. A re-scan of an unchanged folder is this walk, in batches of a statement
    pair each, and no shard at all; the next batch is walked and stat'ed (in a thread)
    while Postgres compares this one."""
    loop = asyncio.get_running_loop()
    cut, files = _Cut(size), iter_files(root)
    batch = ctx.settings.ingest_batch_size
    upcoming = loop.run_in_executor(None, _next_walked, files, str(root), batch)
    while walked := await upcoming:
        upcoming = loop.run_in_executor(None, _next_walked, files, str(root), batch)
        to_read = {id(f) for f in await _link_unchanged(ctx, [f for _, f in walked])}
        for rel, scanned in walked:
            cut.add(rel, id(scanned) in to_read)
        await ctx.check_cancelled()
    return cut.plan()


async def _plan(ctx: RunContext, root: Path, size: int) -> Plan:
    """The scan's shards. Where the dataset has stored versions, planning compares the files
    with them and links the ones still true; a shard all of whose files were linked is done
    from the start, and no one walks its range again (files added to it since the plan's
    walk are not in this scan, as if added after it)."""
    async with ctx.sessionmaker() as session:
        known = await datasets.has_versions(session, ctx.dataset_id)
    if known:
        return await _linking_plan(ctx, root, size)
    # The walk touches the disk: in a thread, never on the event loop.
    return await asyncio.to_thread(_cut_walk, root, size)


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

    found = await run_all(*(link(part) for part in split_evenly(stats, _LINK_PARTS)))
    return [f for part in found for f in part]


async def _running(pool: ReplaceablePool) -> ProcessPoolExecutor:
    """The pool's processes, started. A process that dies before it has read anything is no
    file's fault: the scan fails, saying so."""
    try:
        return await pool.running()
    except BrokenProcessPool as exc:
        raise _cannot_run(exc) from None


def _cannot_run(exc: BrokenProcessPool) -> StageFailed:
    return StageFailed(f"the scanning processes cannot run here: {exc}")


def _scanning_processes(count: int) -> ReplaceablePool:
    # Their fork server imports the scanner (Pillow, hashing, the file checks) once.
    return ReplaceablePool(count, preload=[scanner.__name__])


class _Examiners:
    """The worker's scanning processes: started on first use, shared by every shard it runs
    (a new pool where a job's settings ask for another count)."""

    def __init__(self) -> None:
        self._pool: ReplaceablePool | None = None

    def of(self, count: int) -> ReplaceablePool:
        if self._pool is None or self._pool.count != count:
            if self._pool is not None:
                self._pool.retire()
            self._pool = _scanning_processes(count)
        return self._pool


_EXAMINERS = _Examiners()
CRASHED = "reading it ended the process that read it (the decoder crashed or ran out of memory)"


def _too_slow(timeout_s: float) -> str:
    return f"reading it did not finish within {timeout_s:g} s, twice (SCAN_CHUNK_TIMEOUT_S)"


async def _examined(ctx: RunContext, root: Path, files: list[ScannedFile]) -> list[ScannedFile]:
    """The files hashed and validated in the scanning processes, a chunk each (one hand-off
    per process, not per file), in the order given."""
    count = ctx.settings.scan_process_count
    limits, roots = ctx.settings.image_limits, ctx.settings.data_root_paths
    timeout_s = ctx.settings.scan_chunk_timeout_s
    chunks = split_evenly(files, count)
    loop = asyncio.get_running_loop()
    examiners = _EXAMINERS.of(count)
    pool = await _running(examiners)
    try:
        runs = (loop.run_in_executor(pool, examine_chunk, root, c, limits, roots) for c in chunks)
        examined = await within(pool, timeout_s, run_all(*runs))
    except (BrokenProcessPool, TimeoutError) as failed:
        examiners.replace(pool)
        why = "was too slow" if isinstance(failed, TimeoutError) else "died"
        logger.warning("a scanning process %s: its batch is read again, part by part", why)
        examined = [await _isolating(root, chunk, limits, roots, timeout_s) for chunk in chunks]
    return [f for chunk in examined for f in chunk]


async def _isolating(
    root: Path,
    files: list[ScannedFile],
    limits: ImageLimits,
    roots: list[Path],
    timeout_s: float,
) -> list[ScannedFile]:
    """A chunk again after a scanning process died or stuck holding it (or another chunk),
    part by part in a process of its own (shared.processes.isolating): a file that ends a
    process twice, or keeps it past timeout_s twice, is invalid, saying so; the others are
    examined as usual. A hostile file costs a few processes, never the worker, the job or
    the files beside it."""

    def invalid(file: ScannedFile, failed: BaseException) -> ScannedFile:
        reason = _too_slow(timeout_s) if isinstance(failed, TimeoutError) else CRASHED
        logger.warning("%s: %s", file.relpath, reason)
        return replace(file, invalid_reason=reason)

    examine = partial(examine_chunk, root, limits=limits, roots=roots)
    try:
        return await isolating(files, _scanning_processes(1), examine, invalid, timeout_s)
    except BrokenProcessPool as exc:  # its process could not even start
        raise _cannot_run(exc) from None


async def _examine_batch(ctx: RunContext, root: Path, stats: list[ScannedFile]) -> _Batch:
    """The files that need a new version, hashed and validated; the stored versions still
    true are linked to the job on the way (committed here: the job keeps what it saw)."""
    changed = await _link_unchanged(ctx, stats)
    to_read = [i for i, s in enumerate(changed) if s.invalid_reason is None]
    # What the processes send back replaces what was sent; files invalid at stat time stay.
    examined = await _examined(ctx, root, [changed[i] for i in to_read])
    for i, scanned in zip(to_read, examined, strict=True):
        changed[i] = scanned
    return _Batch(changed, len(stats))


async def _store(ctx: RunContext, batch: _Batch, shard: HeldShard) -> None:
    """A batch's versions and links, and the progress that counts them, in one commit; then
    stop if a cancel was asked for (read in the same transaction: no round trip of its own)."""
    async with ctx.sessionmaker() as session, session.begin():
        await datasets.link_versions(session, ctx.dataset_id, ctx.job_id, batch.changed, [])
        await shard.count_in(session, batch.files)
        cancelled = await lifecycle.stop_requested(session, ctx.job_id)
    if cancelled:
        raise JobCancelled()


@dataclass
class _ScanPass:
    """A reader that walks, compares and examines batches into a small queue, and a writer
    that stores them: reading the next batch overlaps storing the last."""

    ctx: RunContext
    root: Path
    shard: HeldShard

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=2)

    async def run(self) -> None:
        async with task_group() as group:
            group.create_task(self._reader())
            group.create_task(self._writer())

    async def _reader(self) -> None:
        loop = asyncio.get_running_loop()
        files, root = iter_files(self.root, self.shard.lo, self.shard.hi), str(self.root)
        size = self.ctx.settings.ingest_batch_size
        # Walking and stat'ing the folder touch the disk: in a thread, never on the event loop.
        upcoming = loop.run_in_executor(None, _next_stats, files, root, size)
        while stats := await upcoming:
            # The next batch is walked and stat'ed while this one is compared and read.
            upcoming = loop.run_in_executor(None, _next_stats, files, root, size)
            batch = await _examine_batch(self.ctx, self.root, stats)
            await self.queue.put(batch)
        await self.queue.put(None)

    async def _writer(self) -> None:
        await self.ctx.check_cancelled()
        while (batch := await self.queue.get()) is not None:
            await _store(self.ctx, batch, self.shard)


async def _scan_shard(ctx: RunContext, root: Path, shard: HeldShard) -> None:
    """Scan the shard's range of the walk (all of it again on a rerun: the files its earlier
    runner linked cost one stat each)."""
    await shard.restart(0)
    await _ScanPass(ctx, root, shard).run()


@asynccontextmanager
async def shard_worker(
    ctx: RunContext, root: Path, transports: Transports
) -> AsyncIterator[ShardWork]:
    """How a shard task scans: the folder must be there (mounted at the same path on every
    machine), or the shard would record every file as unreadable."""
    if not await asyncio.to_thread(root.is_dir):
        raise StageFailed(f"dataset folder '{root}' is not readable on {fanout.RUNNER}")
    yield partial(_scan_shard, ctx, root)


async def run(ctx: RunContext, root: Path) -> None:
    await ctx.start_stage(Stage.SCAN)
    planned: list[Plan] = []

    async def plan() -> Plan:
        # The plan walks the folder: it counts the files as it cuts them into shards.
        planned.append(await _plan(ctx, root, ctx.settings.shard_size))
        return planned[-1]

    state = await fanout.run_stage(ctx, Stage.SCAN, plan, partial(_scan_shard, ctx, root))
    # A plan that left no shard to run stored no version, only links (a resumed scan does
    # not plan, and cannot tell).
    versions = not planned or not all(span.finished for span in planned[-1].spans)
    async with ctx.sessionmaker() as session, session.begin():
        await datasets.analyze_images(session, versions=versions)
    await ctx.finish_stage(Stage.SCAN, done=state.done, total=state.done)
    logger.info("scanned %d files under %s", state.done, root)
