"""The scan stage: walk the dataset, hash and validate every file, remember what this job saw.

Files whose size and mtime match the stored version are not read again, so re-submitting a
folder (or resuming a killed job) costs one stat per file. A changed file gets a new version
(image row); earlier jobs keep the versions they saw, so their results never change.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from analysis_service.datasets import repository as datasets
from analysis_service.datasets.layout import iter_files
from analysis_service.datasets.scanner import ScannedFile, examine, stat_file
from analysis_service.jobs.lifecycle import Stage
from analysis_service.models import Image
from analysis_service.pipeline.context import RunContext
from shared.concurrency import run_all

logger = logging.getLogger(__name__)


def _unchanged(known: datasets.KnownImage | None, current: ScannedFile) -> bool:
    """Whether the stored version still describes the file. A version the job already saw
    (a resumed scan) is kept as it is: the job keeps what it saw first."""
    if known is None:
        return False
    image = known.image
    return known.in_job or (
        image.size_bytes == current.size_bytes
        and image.mtime_ns == current.mtime_ns
        and image.class_name == current.class_name
        and (current.invalid_reason is None or current.invalid_reason == image.invalid_reason)
    )


def _stat_all(root: Path, batch: list[tuple[str, str | None]]) -> list[ScannedFile]:
    return [stat_file(root, rel, cls) for rel, cls in batch]


def _count(root: Path) -> int:
    return sum(1 for _ in iter_files(root))


def _next_batch(files: Iterator[tuple[str, str | None]], size: int) -> list[tuple[str, str | None]]:
    return list(itertools.islice(files, size))


async def _examine_batch(
    ctx: RunContext, root: Path, batch: list[tuple[str, str | None]], pool: ThreadPoolExecutor
) -> tuple[list[ScannedFile], list[Image]]:
    """Return the files that need a new version, and the known versions still true."""
    loop = asyncio.get_running_loop()
    stats = await loop.run_in_executor(pool, _stat_all, root, batch)
    async with ctx.sessionmaker() as session:
        known = await datasets.known_images(
            session, ctx.dataset_id, ctx.job_id, [s.relpath for s in stats]
        )
    changed = [s for s in stats if not _unchanged(known.get(s.relpath), s)]
    todo = [s for s in changed if s.invalid_reason is None]
    limits, roots = ctx.settings.image_limits, ctx.settings.data_root_paths
    await run_all(*(loop.run_in_executor(pool, examine, root, s, limits, roots) for s in todo))
    reused = [known[s.relpath].image for s in stats if _unchanged(known.get(s.relpath), s)]
    return changed, reused


async def _store(ctx: RunContext, changed: list[ScannedFile], reused: list[Image]) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await datasets.link_versions(session, ctx.dataset_id, ctx.job_id, changed, reused)


async def run(ctx: RunContext, root: Path) -> None:
    # Walking and stat'ing the folder touch the disk: in threads, never on the event loop.
    total = await asyncio.to_thread(_count, root)
    await ctx.start_stage(Stage.SCAN, done=0, total=total)
    done = 0
    size = ctx.settings.ingest_batch_size
    # Hashing and decoding release the GIL, so threads use every core.
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="scan") as pool:
        files = iter_files(root)
        while batch := await loop.run_in_executor(pool, _next_batch, files, size):
            await ctx.check_cancelled()
            changed, reused = await _examine_batch(ctx, root, batch, pool)
            await _store(ctx, changed, reused)
            done += len(batch)
            await ctx.update_stage(Stage.SCAN, done=done)
    async with ctx.sessionmaker() as session, session.begin():
        await datasets.analyze_images(session)
    await ctx.finish_stage(Stage.SCAN, done=done, total=done)
    logger.info("scanned %d files under %s", done, root)
