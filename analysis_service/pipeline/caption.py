"""The caption stage: caption every valid image of the job that has no caption yet under the
engine's key.

A reader pages through uncaptioned images (keyset on image id) and feeds batches to a bounded
set of senders, so the caption services always have work queued while results are written.
Each batch is committed on its own: a killed worker loses at most the batches in flight.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from analysis_service.captions import repository as captions
from analysis_service.clients.caption_client import CaptionClient, CaptionServiceError, ImageRef
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline.context import RunContext, StageFailed
from shared.caption_contract import CaptionResult, EngineInfo
from shared.concurrency import task_group

logger = logging.getLogger(__name__)


def _not_the_scanned_bytes(result: CaptionResult, content_hash: str) -> str | None:
    """Why a caption is not the caption of the bytes the scan hashed, if it is not: the file
    was changed (or swapped) between the scan and its reading by the caption service."""
    if result.sha256 is None:
        return "the caption service did not say which bytes it captioned"
    if result.sha256 != content_hash:
        return "file changed since it was scanned"
    return None


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
            if (changed := _not_the_scanned_bytes(result, image.content_hash)) is not None:
                # Never stored under the scanned hash: it is the caption of other bytes.
                failures.append((image.content_hash, changed))
                continue
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


async def _engine_info(client: CaptionClient, class_hint: bool) -> EngineInfo:
    try:
        return await client.info(class_hint)
    except CaptionServiceError as exc:
        raise StageFailed(str(exc)) from exc
    except Exception as exc:
        raise StageFailed(f"caption service unavailable: {exc}") from exc


@dataclass
class _CaptionPass:
    """One reader pages through the images still to caption and feeds a bounded queue; enough
    senders take batches from it to keep every caption replica busy."""

    ctx: RunContext
    root: Path
    client: CaptionClient
    info: EngineInfo
    key: str
    class_hint: bool
    done: int
    senders: int

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[list[captions.PendingImage] | None] = asyncio.Queue(
            maxsize=self.senders
        )

    async def run(self) -> None:
        try:
            async with task_group() as group:
                group.create_task(self._reader())
                for _ in range(self.senders):
                    group.create_task(self._sender())
        except CaptionServiceError as exc:
            raise StageFailed(str(exc)) from exc

    async def _reader(self) -> None:
        after = 0
        while True:
            await self.ctx.check_cancelled()
            async with self.ctx.sessionmaker() as session:
                page = await captions.pending_page(
                    session, self.ctx.job_id, self.key, after, self.ctx.settings.caption_batch_size
                )
            if not page:
                break
            after = page[-1].image_id
            await self.queue.put(page)
        # Only on a clean finish: after a failure the task group cancels the senders itself.
        for _ in range(self.senders):
            await self.queue.put(None)

    async def _sender(self) -> None:
        while (batch := await self.queue.get()) is not None:
            refs = [ImageRef(str(i.image_id), self.root / i.relpath, i.class_name) for i in batch]
            used_info, results = await self.client.caption(refs, self.class_hint)
            if used_info is not None and used_info.caption_key() != self.key:
                raise StageFailed("the caption service changed engine or model during the job")
            await _store_results(self.ctx, self.key, self.info, batch, results)
            self.done += len(batch)
            await self.ctx.update_stage(Stage.CAPTION, done=self.done)


async def run(ctx: RunContext, root: Path, client: CaptionClient) -> None:
    class_hint = ctx.options.caption_class_hint
    info = await _engine_info(client, class_hint)
    key = await use_caption_key(ctx, info)
    done, total = await _progress_so_far(ctx, key)
    await ctx.start_stage(
        Stage.CAPTION, done=done, total=total, engine=info.engine, model=info.model
    )
    senders = ctx.settings.caption_concurrency * len(client.urls)
    work = _CaptionPass(ctx, root, client, info, key, class_hint, done, senders)
    await work.run()
    async with ctx.sessionmaker() as session, session.begin():
        await captions.analyze_captions(session)
    await ctx.finish_stage(Stage.CAPTION, done=total)
    logger.info("captioned %d images with %s/%s", work.done, info.engine, info.model)
