"""Caption service app factory: `uvicorn --factory caption_service.app:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from caption_service import metrics
from caption_service.auth import require_caption_key
from caption_service.engines import build_engine
from caption_service.engines.base import AnyEngine
from caption_service.pixel_budget import PixelBudget
from caption_service.router import health, router
from caption_service.settings import CaptionSettings
from caption_service.state import CaptionState
from shared.api_docs import install_api_docs
from shared.bearer import declare_auth_optional
from shared.body_limit import BodyLimitMiddleware
from shared.errors import ERROR_RESPONSES, install_error_handlers
from shared.logging import RequestIdMiddleware, configure_logging

EngineFactory = Callable[[CaptionSettings, Executor], AnyEngine]


def create_app(
    settings: CaptionSettings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """The app; engine_factory replaces the configured engine (tests, benchmarks)."""
    settings = settings or CaptionSettings()
    make_engine = engine_factory or build_engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, service="caption")
        executor = ThreadPoolExecutor(
            max_workers=settings.worker_count, thread_name_prefix="caption-prep"
        )
        engine = make_engine(settings, executor)
        budget = PixelBudget(settings.max_decode_pixels_in_flight, settings.caption_decode_wait_s)
        app.state.captioner = state = CaptionState(
            settings=settings, engine=engine, executor=executor, pixel_budget=budget
        )
        metrics.DECODE_PIXELS.set_function(lambda: state.decode_budget().in_use)
        try:
            yield
        finally:
            await engine.close()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="Caption service",
        # Served from local assets by install_api_docs: FastAPI's pages load a CDN.
        docs_url=None,
        redoc_url=None,
        description="Images in, captions out. Engines: pixel (CPU, offline), vllm (LLaVA-1.5 "
        "in-process), openai (any OpenAI-compatible vision endpoint).",
        version="0.1.0",
        lifespan=lifespan,
        # Every route answers errors with ErrorBody (validation included), so every route says so.
        responses=ERROR_RESPONSES,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        timeout_s=settings.request_body_timeout_s,
    )
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.include_router(health)
    app.include_router(router, dependencies=[Depends(require_caption_key)])
    declare_auth_optional(app)
    install_api_docs(app)
    _publish_batch_limit(app, settings.caption_max_batch)
    return app


def _publish_batch_limit(app: FastAPI, max_batch: int) -> None:
    """Put CAPTION_MAX_BATCH in the published schema (maxItems of a request's images): the
    contract's model cannot know a deployment's setting, and a client (or a fuzzer) should see
    the limit it is held to (413 above it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            images = schema["components"]["schemas"]["CaptionRequest"]["properties"]["images"]
            images["maxItems"] = max_batch
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
