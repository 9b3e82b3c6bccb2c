"""Which reasoner a job gets."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.pipeline.context import RunContext
from analysis_service.reasoners.base import Reasoner
from analysis_service.reasoners.llm import LLMReasoner
from analysis_service.reasoners.llm_client import LLMClient
from analysis_service.reasoners.llm_log import DatabaseCallLog
from analysis_service.settings import AnalysisSettings
from shared.openai_chat import ChatClient

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_llm_client(
    settings: AnalysisSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    token_budget: int | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[LLMClient]:
    """The configured LLM (LLM_BASE_URL must be set), its calls logged on the job, answered
    from the cache when asked before, and held to the job's token budget and its API key's
    daily cap."""
    log = DatabaseCallLog(sessionmaker, job_id, token_budget, settings.key_daily_tokens)
    await log.load_spent()
    chat = ChatClient(settings.llm_endpoint, transport=transport)
    try:
        yield LLMClient(
            chat, log, concurrency=settings.llm_concurrency, max_tokens=settings.llm_max_tokens
        )
    finally:
        await chat.aclose()


OFFLINE_REASONER = "analysis_service.reasoners.tfidf_cluster"
_ahead = threading.Lock()
_started_ahead = False


def load_offline_reasoner_ahead(settings: AnalysisSettings) -> None:
    """Start loading the offline reasoner in a thread, once per process, where a job will soon
    discover with it (its captions are being made or read): its first class then need not
    wait. Not when a worker starts: its libraries take about 250 MiB (SciPy, scikit-learn,
    pandas) that a worker scanning a big folder, or discovering with an LLM, has no use for,
    and seconds of CPU a just-started worker's first scan would share."""
    global _started_ahead
    if settings.llm_base_url:
        return
    with _ahead:
        if _started_ahead:
            return
        _started_ahead = True
    threading.Thread(target=_import_ahead, name="load-offline-reasoner", daemon=True).start()


def _import_ahead() -> None:
    try:
        importlib.import_module(OFFLINE_REASONER)
    except Exception as exc:  # the job's discovery will import it again, and fail there
        logger.warning("the offline reasoner could not be loaded ahead: %s", exc)


async def load_offline_reasoner() -> ModuleType:
    """The offline reasoner's module, imported in a thread: scikit-learn and what it loads
    (SciPy, pandas, pyarrow) take about 250 MiB and a second or two (more on a busy machine),
    which must not stall the event loop (a job's run starts it ahead: see
    load_offline_reasoner_ahead)."""
    return await asyncio.to_thread(importlib.import_module, OFFLINE_REASONER)


@asynccontextmanager
async def open_reasoner(
    ctx: RunContext, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Reasoner]:
    """The job's reasoner: the LLM when LLM_BASE_URL is set (its calls logged on the job and
    held to its token budget), else the offline statistical reasoner (tfidf-cluster-v1)."""
    settings = ctx.settings
    if not settings.llm_base_url:
        module = await load_offline_reasoner()
        yield module.TfidfClusterReasoner()
        return
    budget = ctx.options.token_budget
    async with open_llm_client(settings, ctx.sessionmaker, ctx.job_id, budget, transport) as llm:
        yield LLMReasoner(
            llm,
            settings.discovery_steps(ctx.options.assignment_mode, ctx.options.saturation_rounds),
        )
