"""Stage 'import': captions from a file instead of the caption service.

Alone, the file defines the images (name and label per row): discovery runs on datasets whose
images are not on this machine. With a dataset folder, each row is matched to a scanned image
by its relative path or file name, and the caption service is not called.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from analysis_service.datasets import repository as datasets
from analysis_service.datasets.captions_file import CaptionRow, read_rows
from analysis_service.datasets.scanner import ScannedFile
from analysis_service.models import Caption, JobImage
from analysis_service.pipeline import caption as caption_stage
from analysis_service.pipeline.context import JobContext
from shared.caption_contract import EngineInfo

STAGE = "import"
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


def _caption_rows(key: str, info: EngineInfo, pairs: list[tuple[str, str]]) -> list[dict]:
    return [
        {
            "content_hash": h,
            "caption_key": key,
            "engine": info.engine,
            "model": info.model,
            "prompt_version": info.prompt_version,
            "source": "imported",
            "text": t,
        }
        for h, t in pairs
    ]


async def _store_standalone(
    ctx: JobContext, key: str, info: EngineInfo, rows: list[CaptionRow]
) -> None:
    files = [
        ScannedFile(r.image, r.label or UNLABELLED, 0, 0, content_hash=text_hash(r.caption))
        for r in rows
    ]
    async with ctx.sessionmaker() as session, session.begin():
        ids = await datasets.upsert_images(session, ctx.dataset_id, files)
        await session.execute(
            insert(JobImage)
            .values([{"job_id": ctx.job_id, "image_id": i} for i in ids.values()])
            .on_conflict_do_nothing()
        )
        pairs = list({text_hash(r.caption): r.caption for r in rows}.items())
        await session.execute(
            insert(Caption).values(_caption_rows(key, info, pairs)).on_conflict_do_nothing()
        )


_MATCH = text(
    """
    SELECT DISTINCT ON (name) name, i.content_hash
    FROM unnest(CAST(:names AS text[])) AS name
    JOIN job_image ji ON ji.job_id = :job_id
    JOIN image i ON i.id = ji.image_id AND i.invalid_reason IS NULL
     AND (i.relpath = name OR regexp_replace(i.relpath, '^.*/', '') = name)
    ORDER BY name, (i.relpath = name) DESC, i.id
    """
)


async def _store_matched(
    ctx: JobContext, key: str, info: EngineInfo, rows: list[CaptionRow]
) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        found: dict[str, str] = dict(
            (
                await session.execute(
                    _MATCH, {"names": [r.image for r in rows], "job_id": ctx.job_id}
                )
            ).all()
        )
        pairs = list({found[r.image]: r.caption for r in rows if r.image in found}.items())
        if pairs:
            await session.execute(
                insert(Caption).values(_caption_rows(key, info, pairs)).on_conflict_do_nothing()
            )


async def _mark_uncaptioned(ctx: JobContext, key: str) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE job_image ji SET caption_error = 'no caption in the imported file' "
                "FROM image i WHERE i.id = ji.image_id AND ji.job_id = :job_id "
                "AND i.invalid_reason IS NULL AND NOT EXISTS (SELECT 1 FROM caption c "
                "WHERE c.content_hash = i.content_hash AND c.caption_key = :key)"
            ),
            {"job_id": ctx.job_id, "key": key},
        )


async def run(ctx: JobContext, path: Path, with_dataset: bool) -> None:
    digest = file_digest(path)
    info = EngineInfo(
        engine="import",
        model=path.name,
        prompt_version=digest[:12],
        prompt="(captions imported from a file)",
        params={"source": str(path)},
    )
    key = caption_stage.caption_key(info)
    await caption_stage.register_key(ctx, key, info)
    total = int(ctx.options.get("captions_rows") or 0)
    await ctx.start_stage(STAGE, done=0, total=total or None, unit="rows")
    done = 0
    rows = read_rows(path)
    while batch := list(itertools.islice(rows, BATCH)):
        await ctx.check_cancelled()
        if with_dataset:
            await _store_matched(ctx, key, info, batch)
        else:
            await _store_standalone(ctx, key, info, batch)
        done += len(batch)
        await ctx.update_stage(STAGE, done=done)
    if with_dataset:
        await _mark_uncaptioned(ctx, key)
    await ctx.finish_stage(STAGE, done=done, total=done)
