"""Stage 2: caption every valid image the job saw that has no caption under the engine's key.

A reader pages through uncaptioned images (keyset on image id) and feeds batches to a bounded
set of senders, so the caption services always have work queued while results are written.
Each batch is committed on its own: a killed worker loses at most the batches in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert

from analysis_service.clients.caption_client import CaptionClient, CaptionServiceError, ImageRef
from analysis_service.models import Caption, CaptionConfig, Image, Job, JobImage
from analysis_service.pipeline.context import JobContext, StageFailed
from shared.caption_contract import CaptionResult, EngineInfo

logger = logging.getLogger(__name__)
STAGE = "caption"


def caption_key(info: EngineInfo) -> str:
    canonical = json.dumps(info.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_PENDING = """
    FROM job_image ji JOIN image i ON i.id = ji.image_id
    WHERE ji.job_id = :job_id AND ji.image_id > :after
      AND i.invalid_reason IS NULL AND ji.caption_error IS NULL
      AND NOT EXISTS (SELECT 1 FROM caption c
                      WHERE c.content_hash = i.content_hash AND c.caption_key = :key)
      -- identical files are captioned once: only the lowest image id of each content hash
      AND NOT EXISTS (SELECT 1 FROM job_image ji2 JOIN image i2 ON i2.id = ji2.image_id
                      WHERE ji2.job_id = ji.job_id AND i2.content_hash = i.content_hash
                        AND i2.id < i.id AND i2.invalid_reason IS NULL)
"""


async def _pending_page(ctx: JobContext, key: str, after: int, limit: int) -> list[tuple]:
    """The next uncaptioned images after an id (keyset paging on the job_image key)."""
    sql = text(
        f"SELECT i.id, i.content_hash, i.relpath, i.class_name {_PENDING} "
        "ORDER BY ji.image_id LIMIT :limit"
    )
    async with ctx.sessionmaker() as session:
        rows = await session.execute(
            sql, {"job_id": ctx.job_id, "key": key, "after": after, "limit": limit}
        )
        return [tuple(r) for r in rows]


async def _count_valid(ctx: JobContext) -> int:
    sql = text(
        "SELECT count(*) FROM job_image ji JOIN image i ON i.id = ji.image_id "
        "WHERE ji.job_id = :job_id AND i.invalid_reason IS NULL"
    )
    async with ctx.sessionmaker() as session:
        return int(await session.scalar(sql, {"job_id": ctx.job_id}) or 0)


async def _count_pending(ctx: JobContext, key: str) -> int:
    sql = text(f"SELECT count(*) {_PENDING}")
    async with ctx.sessionmaker() as session:
        params = {"job_id": ctx.job_id, "key": key, "after": 0}
        return int(await session.scalar(sql, params) or 0)


async def _store_results(
    ctx: JobContext, key: str, info: EngineInfo, batch: list[tuple], results: list[CaptionResult]
) -> None:
    by_id = {str(row[0]): row for row in batch}
    captions, failures = [], []
    for result in results:
        image_id, content_hash = by_id[result.id][:2]
        if result.caption is not None and result.error is None:
            captions.append(
                {
                    "content_hash": content_hash,
                    "caption_key": key,
                    "engine": info.engine,
                    "model": info.model,
                    "prompt_version": info.prompt_version,
                    "source": "generated",
                    "text": result.caption,
                    "prompt_tokens": result.prompt_tokens,
                    "output_tokens": result.output_tokens,
                    "finish_reason": result.finish_reason,
                }
            )
        else:
            failures.append((image_id, content_hash, result.error or "no caption returned"))
    async with ctx.sessionmaker() as session, session.begin():
        if captions:
            await session.execute(insert(Caption).values(captions).on_conflict_do_nothing())
        for _, content_hash, reason in failures:
            # Every image of the job with these bytes shares the failure.
            await session.execute(
                update(JobImage)
                .where(
                    JobImage.job_id == ctx.job_id,
                    JobImage.image_id.in_(
                        select(Image.id).where(Image.content_hash == content_hash)
                    ),
                )
                .values(caption_error=f"caption failed: {reason}")
            )


async def register_key(ctx: JobContext, key: str, info: EngineInfo) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await session.execute(
            insert(CaptionConfig)
            .values(caption_key=key, info=info.model_dump(mode="json"))
            .on_conflict_do_nothing()
        )
        await session.execute(update(Job).where(Job.id == ctx.job_id).values(caption_key=key))


async def run(ctx: JobContext, root: Path, client: CaptionClient) -> None:
    class_hint = bool(ctx.options.get("caption_class_hint"))
    try:
        info = await client.info(class_hint)
    except CaptionServiceError as exc:
        raise StageFailed(str(exc)) from exc
    except Exception as exc:
        raise StageFailed(f"caption service unavailable: {exc}") from exc
    key = caption_key(info)
    await register_key(ctx, key, info)
    # Progress counts the job's valid images, so a resumed stage starts where it stopped.
    total = await _count_valid(ctx)
    done = total - await _count_pending(ctx, key)
    await ctx.start_stage(STAGE, done=done, total=total, engine=info.engine, model=info.model)
    settings = ctx.settings
    # Enough requests in flight to keep every replica busy.
    senders = settings.caption_concurrency * len(client.urls)
    queue: asyncio.Queue[list[tuple] | None] = asyncio.Queue(maxsize=senders)

    async def sender() -> None:
        nonlocal done
        while (batch := await queue.get()) is not None:
            refs = [ImageRef(str(r[0]), root / r[2], r[3]) for r in batch]
            used_info, results = await client.caption(refs, class_hint)
            if caption_key(used_info) != key:
                raise StageFailed("the caption service changed engine or model during the job")
            await _store_results(ctx, key, info, batch, results)
            done += len(batch)
            await ctx.update_stage(STAGE, done=done)

    async def reader() -> None:
        after = 0
        while True:
            await ctx.check_cancelled()
            page = await _pending_page(ctx, key, after, settings.caption_batch_size)
            if not page:
                break
            after = page[-1][0]
            await queue.put(page)
        # Only on a clean finish: after a failure the task group cancels the senders itself.
        for _ in range(senders):
            await queue.put(None)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(reader())
            for _ in range(senders):
                group.create_task(sender())
    except BaseExceptionGroup as group_error:
        # The first failure is the story (the others are its consequences): raise it bare so
        # the job's error names it, not "unhandled errors in a TaskGroup".
        first = group_error.exceptions[0]
        if isinstance(first, CaptionServiceError):
            raise StageFailed(str(first)) from first
        raise first from None
    await ctx.finish_stage(STAGE, done=total)
    logger.info("captioned %d images with %s/%s", done, info.engine, info.model)
