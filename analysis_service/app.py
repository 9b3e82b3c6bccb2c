"""Analysis API app factory: `uvicorn --factory analysis_service.app:create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request

from analysis_service.auth.dependencies import (
    AuthGate,
    authorize,
    check_caller_of_refused_request,
)
from analysis_service.auth.pages import install_sign_in_redirect, sign_in
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.embedded_db import resolve_database_url
from analysis_service.explorer.router import router as explorer_router
from analysis_service.exports.router import router as exports_router
from analysis_service.groups.router import router as groups_router
from analysis_service.jobs.router import router as jobs_router
from analysis_service.migrate import schema_revision
from analysis_service.predictions.router import router as predictions_router
from analysis_service.settings import AnalysisSettings
from analysis_service.slices.router import router as slices_router
from analysis_service.subpopulations.router import router as subpopulations_router
from analysis_service.tail.router import router as tail_router
from analysis_service.thumbnails.router import router as thumbnails_router
from analysis_service.thumbnails.service import Thumbnails
from shared.api_docs import install_api_docs
from shared.bearer import declare_auth_optional
from shared.body_limit import BodyLimitMiddleware
from shared.errors import ERROR_RESPONSES, Unavailable, install_error_handlers
from shared.logging import RequestIdMiddleware, configure_logging

health = APIRouter(tags=["health"])


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(request: Request) -> dict[str, str]:
    """The database answers and holds the schema."""
    try:
        async with request.app.state.engine.connect() as conn:
            version = await schema_revision(conn)
    except Exception as exc:
        raise Unavailable(f"database not ready: {type(exc).__name__}") from None
    return {"status": "ready", "schema": str(version)}


def create_app(settings: AnalysisSettings | None = None) -> FastAPI:
    settings = settings or AnalysisSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, service="analysis")
        # Every connection kept open, none opened per burst: a Postgres connection costs far
        # more to open (a new server process, its caches cold, its prepared statements gone)
        # than a query here, and 5 kept with 10 more opened on demand opened one for every
        # 10 to 17 requests from 8 clients.
        engine = make_engine(
            resolve_database_url(settings), pool_size=settings.api_db_connections, max_overflow=0
        )
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.thumbnails = Thumbnails(settings)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Subpopulation discovery",
        # Served from local assets by install_api_docs: FastAPI's pages load a CDN.
        docs_url=None,
        redoc_url=None,
        description=(
            "POST a folder of images sorted by class, poll the job, and query the "
            "subpopulations discovered in each class: class -> dimension -> attribute -> images."
        ),
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
    install_error_handlers(app, caller_check=check_caller_of_refused_request)
    install_sign_in_redirect(app)
    app.state.auth = AuthGate(settings.env_api_keys)
    # Every route included in `guarded` needs a key when keys are configured (and write scope
    # for any method but GET, HEAD and OPTIONS): a new router goes in here.
    guarded = APIRouter(dependencies=[Depends(authorize)])
    guarded.include_router(jobs_router)
    guarded.include_router(subpopulations_router)
    guarded.include_router(predictions_router)
    guarded.include_router(slices_router)
    guarded.include_router(groups_router)
    guarded.include_router(exports_router)
    guarded.include_router(tail_router)
    guarded.include_router(thumbnails_router)
    guarded.include_router(explorer_router)
    app.include_router(health)
    app.include_router(sign_in)
    app.include_router(guarded)
    declare_auth_optional(app)
    install_api_docs(app)
    return app
