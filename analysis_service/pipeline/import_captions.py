"""The import stage: captions from a file instead of the caption service.

Alone, the file defines the images (name and label per row): discovery runs on datasets whose
images are not on this machine. With a dataset folder, each row is matched to a scanned image
by its relative path or file name, and the caption service is not called.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from analysis_service.captions import repository as captions
from analysis_service.datasets import repository as datasets
from analysis_service.datasets.captions_file import CaptionRow, read_rows
from analysis_service.datasets.scanner import ScannedFile
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline.caption import use_caption_key
from analysis_service.pipeline.context import RunContext
from shared.caption_contract import EngineInfo

BATCH = 1000
UNLABELLED = "unlabelled"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
                reused.append(k.image)
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


async def run(ctx: RunContext, path: Path, with_dataset: bool) -> None:
    digest = file_digest(path)
    info = EngineInfo(
        engine="import",
        model=path.name,
        prompt_version=digest[:12],
        prompt="(captions imported from a file)",
        # The whole digest: the key must differ for any other content, or an earlier job's
        # captions could be taken for a changed file's.
        params={"source": str(path), "sha256": digest},
    )
    key = await use_caption_key(ctx, info)
    total = ctx.options.captions_rows or 0
    await ctx.start_stage(Stage.IMPORT, done=0, total=total or None, unit="rows")
    done = 0
    rows = read_rows(path)
    while batch := list(itertools.islice(rows, BATCH)):
        await ctx.check_cancelled()
        if with_dataset:
            await _store_matched(ctx, key, info, batch)
        else:
            await _store_standalone(ctx, key, info, batch)
        done += len(batch)
        await ctx.update_stage(Stage.IMPORT, done=done)
    async with ctx.sessionmaker() as session, session.begin():
        if with_dataset:
            await captions.mark_uncaptioned(session, ctx.job_id, key)
        await datasets.analyze_images(session)
        await captions.analyze_captions(session)
    await ctx.finish_stage(Stage.IMPORT, done=done, total=done)
