"""The caption stage: caption every valid image of the job that has no caption yet under the
engine's key.

The images still to caption are cut into shards of SHARD_SIZE (ranges of image ids) that any
worker captions (pipeline/fanout.py). Within a shard, a reader pages through its uncaptioned
images (keyset on image id) and feeds batches to a bounded set of senders, so the caption
services always have work queued while results are written. Each batch is committed on its
own, with the progress that counts it: a killed worker loses at most the batches in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from analysis_service.captions import repository as captions
from analysis_service.clients.caption_client import (
    CaptionClient,
    CaptionServiceError,
    ImageRef,
    LocalFiles,
)
from analysis_service.jobs import repository as jobs
from analysis_service.jobs.lifecycle import Stage
from analysis_service.pipeline import fanout
from analysis_service.pipeline.context import RunContext, StageFailed, Transports
from analysis_service.pipeline.fanout import HeldShard, Plan, ShardWork
from analysis_service.shards.repository import Span
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
    shard: HeldShard,
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
        await shard.count_in(session, len(batch))


async def use_caption_key(ctx: RunContext, info: EngineInfo) -> str:
    """Register what produced the job's captions and record its key on the job."""
    key = info.caption_key()
    async with ctx.sessionmaker() as session, session.begin():
        await captions.register_key(session, key, info)
    await ctx.record(caption_key=key)
    return key


async def _engine_info(client: CaptionClient, class_hint: bool) -> EngineInfo:
    try:
        return await client.info(class_hint)
    except CaptionServiceError as exc:
        raise StageFailed(str(exc)) from exc
    except Exception as exc:
        raise StageFailed(f"caption service unavailable: {exc}") from exc


def open_client(ctx: RunContext, transport: httpx.AsyncBaseTransport | None) -> CaptionClient:
    """The caption services of the settings, as the job's runners call them."""
    settings = ctx.settings
    return CaptionClient(
        settings.caption_url_list,
        retry=settings.caption_retry,
        timeout_s=settings.caption_timeout_s,
        send=settings.caption_send,
        files=LocalFiles(settings.data_root_paths, settings.max_image_bytes),
        request_id=str(ctx.job_id),
        api_key=settings.caption_api_key.get_secret_value() or None,
        overload_wait_s=settings.caption_overload_wait_s,
        transport=transport,
    )


@dataclass
class _Captioner:
    """What every shard of a job's caption stage is captioned with."""

    ctx: RunContext
    root: Path
    client: CaptionClient
    info: EngineInfo
    key: str

    @property
    def senders(self) -> int:
        return self.ctx.settings.caption_concurrency * len(self.client.urls)

    async def shard(self, shard: HeldShard) -> None:
        """Caption the shard's images still without a caption (on a rerun, only those its
        earlier runner had not stored)."""
        first = int(shard.lo) if shard.lo is not None else None
        before = int(shard.hi) if shard.hi is not None else None
        async with self.ctx.sessionmaker() as session:
            pending = await captions.count_pending(
                session, self.ctx.job_id, self.key, first, before
            )
        await shard.restart(max(0, shard.total - pending))
        await _CaptionPass(self, shard, (first or 1) - 1, before).run()


@dataclass
class _CaptionPass:
    """One reader pages through the shard's images still to caption and feeds a bounded
    queue; enough senders take batches from it to keep every caption replica busy."""

    captioner: _Captioner
    shard: HeldShard
    after: int
    before: int | None

    def __post_init__(self) -> None:
        self.ctx = self.captioner.ctx
        self.senders = self.captioner.senders
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
        batch = self.ctx.settings.caption_batch_size
        # A page holds a batch for every sender: one read (and one cancel check) feeds them
        # all, where a read per batch cost a worker about a seventh of its caption-stage CPU.
        after, size = self.after, batch * self.senders
        while True:
            async with self.ctx.sessionmaker() as session:
                await self.ctx.check_cancelled(session)
                page = await captions.pending_page(
                    session, self.ctx.job_id, self.captioner.key, after, size, self.before
                )
            if not page:
                break
            after = page[-1].image_id
            for start in range(0, len(page), batch):
                await self.queue.put(page[start : start + batch])
        # Only on a clean finish: after a failure the task group cancels the senders itself.
        for _ in range(self.senders):
            await self.queue.put(None)

    async def _sender(self) -> None:
        c = self.captioner
        class_hint = self.ctx.options.caption_class_hint
        while (batch := await self.queue.get()) is not None:
            refs = [ImageRef(str(i.image_id), c.root / i.relpath, i.class_name) for i in batch]
            used_info, results = await c.client.caption(refs, class_hint)
            if used_info is not None and used_info.caption_key() != c.key:
                raise StageFailed("the caption service changed engine or model during the job")
            await _store_results(self.ctx, c.key, c.info, batch, results, self.shard)


def _spans(starts: list[int], pending: int, size: int) -> list[Span]:
    """Shards from their first ids: the first open below, the last above."""
    bounds: list[str | None] = [None, *(str(i) for i in starts[1:]), None]
    return [
        Span(bounds[i], bounds[i + 1], min(size, pending - i * size)) for i in range(len(starts))
    ]


async def _plan(ctx: RunContext, key: str) -> Plan:
    """Shards of the images still to caption; what is captioned already (identical bytes an
    earlier job captioned under the same key) is done before any shard runs."""
    size = ctx.settings.shard_size
    async with ctx.sessionmaker() as session:
        total = await captions.count_valid(session, ctx.job_id)
        pending = await captions.count_pending(session, ctx.job_id, key)
        starts = await captions.pending_starts(session, ctx.job_id, key, size) if pending else []
    return Plan(_spans(starts, pending, size), total=total, done=total - pending)


@asynccontextmanager
async def shard_worker(
    ctx: RunContext, root: Path, transports: Transports
) -> AsyncIterator[ShardWork]:
    """How a shard task captions: with the engine the job's run chose (a replica that has
    another one now would give the job captions of two engines)."""
    async with open_client(ctx, transports.caption) as client:
        info = await _engine_info(client, ctx.options.caption_class_hint)
        async with ctx.sessionmaker() as session:
            key = await jobs.caption_key(session, ctx.job_id)
        if info.caption_key() != key:
            raise StageFailed("the caption service changed engine or model during the job")
        yield _Captioner(ctx, root, client, info, key).shard


async def run(ctx: RunContext, root: Path, client: CaptionClient) -> None:
    info = await _engine_info(client, ctx.options.caption_class_hint)
    key = await use_caption_key(ctx, info)
    await ctx.start_stage(Stage.CAPTION, engine=info.engine, model=info.model)
    captioner = _Captioner(ctx, root, client, info, key)
    state = await fanout.run_stage(ctx, Stage.CAPTION, partial(_plan, ctx, key), captioner.shard)
    async with ctx.sessionmaker() as session, session.begin():
        await captions.analyze_captions(session)
        total = await captions.count_valid(session, ctx.job_id)
    await ctx.finish_stage(Stage.CAPTION, done=total, total=total)
    logger.info("captioned %d images with %s/%s", state.done, info.engine, info.model)
