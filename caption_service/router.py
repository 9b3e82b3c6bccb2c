"""HTTP surface of the caption service."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caption_service import metrics
from caption_service.images import check_paths, prepare_all
from caption_service.state import CaptionState
from shared.caption_contract import CaptionRequest, CaptionResponse, CaptionResult, EngineInfo
from shared.errors import ERROR_RESPONSES, PayloadTooLarge, Unavailable

router = APIRouter()


def get_state(request: Request) -> CaptionState:
    return request.app.state.captioner


State = Annotated[CaptionState, Depends(get_state)]


@router.post("/v1/captions", response_model=CaptionResponse, responses=ERROR_RESPONSES)
async def caption_images(body: CaptionRequest, state: State) -> CaptionResponse:
    """Caption a batch of images; results come back in request order with per-image errors."""
    settings = state.settings
    if len(body.images) > settings.caption_max_batch:
        raise PayloadTooLarge(
            f"batch of {len(body.images)} images exceeds the limit of "
            f"{settings.caption_max_batch} (CAPTION_MAX_BATCH)"
        )
    check_paths(body.images, settings.data_root_paths)
    engine = state.engine
    started = time.perf_counter()
    prepared = await prepare_all(
        body.images, settings.image_limits, engine.max_side, state.executor
    )
    ready = [p for p in prepared if not isinstance(p, str)]
    outputs = iter(await engine.caption(ready) if ready else [])
    results = []
    for item, prep in zip(body.images, prepared, strict=True):
        if isinstance(prep, str):
            results.append(CaptionResult(id=item.id, error=prep))
            continue
        out = next(outputs)
        results.append(
            CaptionResult(
                id=item.id,
                caption=out.caption,
                error=out.error,
                prompt_tokens=out.prompt_tokens,
                output_tokens=out.output_tokens,
            )
        )
    name = engine.info.engine
    for result in results:
        metrics.IMAGES.labels(name, "error" if result.error else "ok").inc()
    metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
    return CaptionResponse(engine=engine.info, results=results)


@router.get("/v1/info", response_model=EngineInfo)
async def engine_info(state: State) -> EngineInfo:
    """Engine, model, prompt and parameters: together they identify a caption."""
    return state.engine.info


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=ERROR_RESPONSES)
async def readyz(state: State) -> dict[str, str]:
    """The engine can serve requests."""
    try:
        await state.engine.check_health()
    except Exception as exc:
        raise Unavailable(f"caption engine is not ready: {exc}") from None
    return {"status": "ready", "engine": state.engine.info.engine}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
