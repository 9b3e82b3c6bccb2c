"""The import stage: captions from a file instead of the caption service.

Alone, the file defines the images (name and label per row): discovery runs on datasets whose
images are not on this machine. With a dataset folder, each row is matched to a scanned image
by its relative path or file name, and the caption service is not called.

The file is opened once, checked (shared.files), and read twice from that one descriptor, so a
name swapped meanwhile changes nothing: a first pass checks every row and hashes the bytes
(the hash is in the caption key), a second imports the rows in batches and must read the same
bytes. All reading happens in threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from analysis_service.captions import repository as captions
from analysis_service.datasets import repository as datasets
from analysis_service.datasets.captions_file import (
    CaptionRow,
    CaptionsFileError,
    Summary,
    check_file,
    open_captions_file,
    read_rows,
)
from analysis_service.datasets.layout import iter_files
from analysis_service.datasets.scanner import ScannedFile
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline.caption import use_caption_key
from analysis_service.pipeline.context import RunContext, StageFailed
from shared.caption_contract import EngineInfo
from shared.paths import PathOutsideRoots

BATCH = 1000
UNLABELLED = "unlabelled"


def text_hash(caption: str) -> str:
    """Imported images without files are keyed by their caption text."""
    return hashlib.sha256(("caption:" + caption).encode()).hexdigest()


def _imported(key: str, info: EngineInfo, texts: dict[str, str]) -> list[dict]:
    """Caption rows of content hash -> caption text."""
    return [captions.caption_row(key, info, "imported", h, t) for h, t in texts.items()]


async def _store_standalone(
    ctx: RunContext, key: str, info: EngineInfo, rows: list[CaptionRow]
) -> None:
    files = [
        ScannedFile(r.image, r.label or UNLABELLED, 0, 0, content_hash=text_hash(r.caption))
        for r in rows
    ]
    async with ctx.sessionmaker() as session, session.begin():
        known = await datasets.known_images(
            session, ctx.dataset_id, ctx.job_id, [f.relpath for f in files]
        )
        changed, reused = [], []
        for f in files:
            k = known.get(f.relpath)
            # A row of a changed file (another label or caption) is a new version: the jobs
            # that imported the earlier file keep theirs.
            if k is not None and (
                k.in_job
                or (k.image.class_name, k.image.content_hash) == (f.class_name, f.content_hash)
            ):
                reused.append(k)
            else:
                changed.append(f)
        await datasets.link_versions(session, ctx.dataset_id, ctx.job_id, changed, reused)
        texts = {text_hash(r.caption): r.caption for r in rows}
        await captions.insert_captions(session, _imported(key, info, texts))


async def _store_matched(
    ctx: RunContext, key: str, info: EngineInfo, rows: list[CaptionRow]
) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        names = [r.image for r in rows]
        found = await captions.match_imported_names(session, ctx.job_id, names)
        texts = {found[r.image]: r.caption for r in rows if r.image in found}
        await captions.insert_captions(session, _imported(key, info, texts))


def known_names(root: Path) -> set[str]:
    """What rows may name: the relative path or the file name of each file in a class folder."""
    known = {rel for rel, cls in iter_files(root) if cls}
    return known | {Path(rel).name for rel in known}


def _checked(f: BinaryIO, path: Path, root: Path | None) -> Summary:
    """The first pass: every row checked (against the dataset's files when there is one)."""
    return check_file(f, path.name, known_names(root) if root is not None else None)


def _next_batch(rows: Iterator[CaptionRow]) -> list[CaptionRow]:
    return list(itertools.islice(rows, BATCH))


async def run(ctx: RunContext, path: Path, root: Path | None) -> None:
    """Import the captions file at path; root is the dataset folder its rows name, if any."""
    try:
        f = await asyncio.to_thread(open_captions_file, path, ctx.settings.data_root_paths)
        with f:
            await _import(ctx, f, path, root)
    except (CaptionsFileError, PathOutsideRoots) as exc:  # unreadable, or rows named
        raise StageFailed(f"captions file refused: {exc}") from None


async def _import(ctx: RunContext, f: BinaryIO, path: Path, root: Path | None) -> None:
    summary = await asyncio.to_thread(_checked, f, path, root)
    info = EngineInfo(
        engine="import",
        model=path.name,
        prompt_version=summary.sha256[:12],
        prompt="(captions imported from a file)",
        # The whole digest: the key must differ for any other content, or an earlier job's
        # captions could be taken for a changed file's.
        params={"source": str(path), "sha256": summary.sha256},
    )
    key = await use_caption_key(ctx, info)
    await ctx.start_stage(Stage.IMPORT, done=0, total=summary.rows, unit="rows")
    done, digest = 0, hashlib.sha256()
    await asyncio.to_thread(f.seek, 0)
    rows = read_rows(f, path.name, digest)
    while batch := await asyncio.to_thread(_next_batch, rows):
        await ctx.check_cancelled()
        if root is not None:
            await _store_matched(ctx, key, info, batch)
        else:
            await _store_standalone(ctx, key, info, batch)
        done += len(batch)
        await ctx.update_stage(Stage.IMPORT, done=done)
    if digest.hexdigest() != summary.sha256:
        raise StageFailed(
            f"captions file '{path.name}' changed while it was imported; retry the job"
        )
    async with ctx.sessionmaker() as session, session.begin():
        if root is not None:
            await captions.mark_uncaptioned(session, ctx.job_id, key)
        await datasets.analyze_images(session)
        await captions.analyze_captions(session)
    await ctx.finish_stage(Stage.IMPORT, done=done, total=done)
