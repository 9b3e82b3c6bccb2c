"""Which reasoner a job gets."""

from __future__ import annotations

import asyncio
import importlib
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


async def load_offline_reasoner() -> ModuleType:
    """The offline reasoner's module, imported in a thread: scikit-learn and what it loads
    (SciPy, pandas, pyarrow) take about 250 MiB and a second or two (more on a busy machine),
    which must not stall the event loop. A worker loads it when it starts (see worker.py)."""
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
