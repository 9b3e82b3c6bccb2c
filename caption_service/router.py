"""HTTP surface of the caption service."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caption_service import metrics, prompts
from caption_service.engines.base import (
    EngineDead,
    EngineOutput,
    EngineUnavailable,
    ReadsItsFiles,
)
from caption_service.images import check_paths, prepare_all
from caption_service.pixel_budget import DecoderBusy
from caption_service.state import CaptionState
from shared.caption_contract import CaptionRequest, CaptionResponse, CaptionResult, EngineInfo
from shared.errors import InvalidRequest, Overloaded, Unavailable

# `router` is guarded by the caption key (app.py); `health` stays open for orchestrators.
router = APIRouter()
health = APIRouter()
DISCONNECT_POLL_S = 0.25


def get_state(request: Request) -> CaptionState:
    return request.app.state.captioner


State = Annotated[CaptionState, Depends(get_state)]


class ClientGone(Exception):
    """The client disconnected; its work was cancelled."""


async def _caption(body: CaptionRequest, state: CaptionState) -> list[CaptionResult]:
    engine, settings = state.engine, state.settings
    if isinstance(engine, ReadsItsFiles):
        described = await engine.caption_files(
            body.images, settings.image_limits, settings.data_root_paths
        )
        return [
            CaptionResult(id=item.id, caption=one.caption, error=one.error, sha256=one.sha256)
            for item, one in zip(body.images, described, strict=True)
        ]
    prepared = await prepare_all(
        body.images,
        settings.image_limits,
        settings.data_root_paths,
        state.pixel_budget,
        state.executor,
        settings.worker_count,
        engine.max_side,
        engine.short_side,
    )
    ready = [(i, p) for i, p in enumerate(prepared) if not isinstance(p, str)]
    instructions = [
        prompts.instruction(settings, body.class_hint, body.images[i].class_name) for i, _ in ready
    ]
    outputs: list[EngineOutput] = (
        await engine.caption([p.image for _, p in ready], instructions) if ready else []
    )
    by_index = {i: out for (i, _), out in zip(ready, outputs, strict=True)}
    results = []
    for i, (item, prep) in enumerate(zip(body.images, prepared, strict=True)):
        if isinstance(prep, str):
            results.append(CaptionResult(id=item.id, error=prep))
            continue
        out = by_index[i]
        results.append(
            CaptionResult(
                id=item.id,
                caption=out.caption,
                error=out.error,
                prompt_tokens=out.prompt_tokens,
                output_tokens=out.output_tokens,
                finish_reason=out.finish_reason,
                sha256=prep.sha256 if out.caption is not None else None,
            )
        )
    return results


async def _unless_disconnected(request: Request, work: asyncio.Task) -> list[CaptionResult]:
    """Await the work, cancelling it (and so aborting generation) if the client leaves."""
    while True:
        done, _ = await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
        if done:
            return work.result()
        if await request.is_disconnected():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            raise ClientGone()


async def _admit(body: CaptionRequest, state: CaptionState) -> None:
    """Refuse a batch that is too big, names files outside DATA_ROOTS, finds the engine dead,
    or does not fit in the images in flight; otherwise count it in."""
    settings = state.settings
    if len(body.images) > settings.caption_max_batch:
        # 422, like any other break of the published schema, which carries the limit.
        raise InvalidRequest(
            f"batch of {len(body.images)} images exceeds the limit of "
            f"{settings.caption_max_batch} (CAPTION_MAX_BATCH)"
        )
    # Resolving paths touches the disk: in a thread, never on the event loop.
    await asyncio.to_thread(check_paths, body.images, settings.data_root_paths)
    if state.dead:
        raise Unavailable(f"caption engine is dead: {state.dead}")
    if not state.try_admit(len(body.images)):
        metrics.REJECTED.inc()
        raise Overloaded(
            f"{state.in_flight} images in flight (CAPTION_MAX_IN_FLIGHT="
            f"{settings.caption_max_in_flight}); retry later",
            retry_after=state.retry_after_s(),
        )


def _count(info: EngineInfo, results: list[CaptionResult], elapsed: float) -> None:
    for result in results:
        metrics.IMAGES.labels(info.engine, "error" if result.error else "ok").inc()
        if result.output_tokens:
            metrics.TOKENS.labels(info.engine, "output").inc(result.output_tokens)
    metrics.BATCH_SECONDS.labels(info.engine).observe(elapsed)


@router.post("/v1/captions", response_model=CaptionResponse)
async def caption_images(body: CaptionRequest, state: State, request: Request) -> Response:
    """Caption a batch of images; results come back in request order with per-image errors."""
    await _admit(body, state)
    started = time.perf_counter()
    elapsed: float | None = None
    metrics.IN_FLIGHT.inc(len(body.images))
    try:
        results = await _unless_disconnected(request, asyncio.create_task(_caption(body, state)))
        elapsed = time.perf_counter() - started
    except ClientGone:
        return Response(status_code=499)
    except EngineDead as exc:
        state.dead = str(exc)
        raise Unavailable(f"caption engine is dead: {exc}") from None
    except EngineUnavailable as exc:
        raise Unavailable(str(exc), retry_after=exc.retry_after or 5.0) from None
    except DecoderBusy as exc:
        metrics.REJECTED.inc()
        raise Overloaded(f"decoding is busy: {exc}", retry_after=state.retry_after_s()) from None
    finally:
        state.release(len(body.images), elapsed)
        metrics.IN_FLIGHT.dec(len(body.images))
    info = state.engine.info(body.class_hint)
    _count(info, results, elapsed or 0.0)
    payload = CaptionResponse(engine=info, results=results)
    return Response(payload.model_dump_json(), media_type="application/json")


@router.get("/v1/info", response_model=EngineInfo)
async def engine_info(
    state: State,
    class_hint: bool = Query(default=False, description="Identity of class-hint captions."),
) -> EngineInfo:
    """Engine, model, prompt and parameters: together they identify a caption."""
    return state.engine.info(class_hint)


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(state: State) -> dict[str, str]:
    """The engine can serve requests."""
    if state.dead:
        raise Unavailable(f"caption engine is dead: {state.dead}")
    try:
        await state.engine.check_health()
    except Exception as exc:
        if isinstance(exc, EngineDead):
            state.dead = str(exc)
        raise Unavailable(f"caption engine is not ready: {exc}") from None
    return {"status": "ready", "engine": state.engine.info().engine}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
