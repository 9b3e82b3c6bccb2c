"""Stage 2: caption every valid image the job saw that has no caption under the engine's key.

A reader pages through uncaptioned images (keyset on image id) and feeds batches to a bounded
set of senders, so the caption services always have work queued while results are written.
Each batch is committed on its own: a killed worker loses at most the batches in flight.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from analysis_service.captions import repository as captions
from analysis_service.clients.caption_client import CaptionClient, CaptionServiceError, ImageRef
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline.context import RunContext, StageFailed
from shared.caption_contract import CaptionResult, EngineInfo
from shared.concurrency import task_group

logger = logging.getLogger(__name__)


async def _store_results(
    ctx: RunContext,
    key: str,
    info: EngineInfo,
    batch: list[captions.PendingImage],
    results: list[CaptionResult],
) -> None:
    by_id = {str(image.image_id): image for image in batch}
    rows, failures = [], []
    for result in results:
        image = by_id[result.id]
        if result.caption is not None and result.error is None:
            rows.append(
                captions.caption_row(
                    key,
                    info,
                    "generated",
                    image.content_hash,
                    result.caption,
                    prompt_tokens=result.prompt_tokens,
                    output_tokens=result.output_tokens,
                    finish_reason=result.finish_reason,
                )
            )
        else:
            failures.append((image.content_hash, result.error or "no caption returned"))
    async with ctx.sessionmaker() as session, session.begin():
        await captions.insert_captions(session, rows)
        for content_hash, reason in failures:
            await captions.record_failure(session, ctx.job_id, content_hash, reason)


async def use_caption_key(ctx: RunContext, info: EngineInfo) -> str:
    """Register what produced the job's captions and record its key on the job."""
    key = info.caption_key()
    async with ctx.sessionmaker() as session, session.begin():
        await captions.register_key(session, key, info)
    await ctx.record(caption_key=key)
    return key


async def _progress_so_far(ctx: RunContext, key: str) -> tuple[int, int]:
    """(done, total) over the job's valid images, so a resumed stage starts where it stopped."""
    async with ctx.sessionmaker() as session:
        total = await captions.count_valid(session, ctx.job_id)
        return total - await captions.count_pending(session, ctx.job_id, key), total


async def _pending_page(ctx: RunContext, key: str, after: int) -> list[captions.PendingImage]:
    async with ctx.sessionmaker() as session:
        return await captions.pending_page(
            session, ctx.job_id, key, after, ctx.settings.caption_batch_size
        )


async def run(ctx: RunContext, root: Path, client: CaptionClient) -> None:
    class_hint = bool(ctx.options.get("caption_class_hint"))
    try:
        info = await client.info(class_hint)
    except CaptionServiceError as exc:
        raise StageFailed(str(exc)) from exc
    except Exception as exc:
        raise StageFailed(f"caption service unavailable: {exc}") from exc
    key = await use_caption_key(ctx, info)
    done, total = await _progress_so_far(ctx, key)
    await ctx.start_stage(
        Stage.CAPTION, done=done, total=total, engine=info.engine, model=info.model
    )
    # Enough requests in flight to keep every replica busy.
    senders = ctx.settings.caption_concurrency * len(client.urls)
    queue: asyncio.Queue[list[captions.PendingImage] | None] = asyncio.Queue(maxsize=senders)

    async def sender() -> None:
        nonlocal done
        while (batch := await queue.get()) is not None:
            refs = [ImageRef(str(i.image_id), root / i.relpath, i.class_name) for i in batch]
            used_info, results = await client.caption(refs, class_hint)
            if used_info.caption_key() != key:
                raise StageFailed("the caption service changed engine or model during the job")
            await _store_results(ctx, key, info, batch, results)
            done += len(batch)
            await ctx.update_stage(Stage.CAPTION, done=done)

    async def reader() -> None:
        after = 0
        while True:
            await ctx.check_cancelled()
            page = await _pending_page(ctx, key, after)
            if not page:
                break
            after = page[-1].image_id
            await queue.put(page)
        # Only on a clean finish: after a failure the task group cancels the senders itself.
        for _ in range(senders):
            await queue.put(None)

    try:
        async with task_group() as group:
            group.create_task(reader())
            for _ in range(senders):
                group.create_task(sender())
    except CaptionServiceError as exc:
        raise StageFailed(str(exc)) from exc
    await ctx.finish_stage(Stage.CAPTION, done=total)
    logger.info("captioned %d images with %s/%s", done, info.engine, info.model)
