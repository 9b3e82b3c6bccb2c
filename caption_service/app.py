"""Caption service app factory: `uvicorn --factory caption_service.app:create_app`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from caption_service.engines import build_engine
from caption_service.router import router
from caption_service.settings import CaptionSettings
from caption_service.state import CaptionState
from shared.errors import install_error_handlers
from shared.logging import configure_logging, request_id_middleware


def create_app(settings: CaptionSettings | None = None) -> FastAPI:
    settings = settings or CaptionSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, service="caption")
        workers = settings.caption_workers or (os.cpu_count() or 2)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption-prep")
        engine = build_engine(settings, executor)
        app.state.captioner = CaptionState(settings=settings, engine=engine, executor=executor)
        try:
            yield
        finally:
            await engine.close()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="Caption service",
        description="Images in, captions out. Engines: pixel (CPU, offline).",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.middleware("http")(request_id_middleware)
    install_error_handlers(app)
    app.include_router(router)
    return app
