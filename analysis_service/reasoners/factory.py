"""Which reasoner a job gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from analysis_service.pipeline.context import RunContext
from analysis_service.reasoners.base import Reasoner
from analysis_service.reasoners.llm import LLMReasoner
from analysis_service.reasoners.llm_client import LLMClient
from analysis_service.reasoners.llm_log import DatabaseCallLog
from analysis_service.reasoners.tfidf_cluster import TfidfClusterReasoner
from shared.openai_chat import ChatClient


@asynccontextmanager
async def open_reasoner(
    ctx: RunContext, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Reasoner]:
    """The job's reasoner: the LLM when LLM_BASE_URL is set (its calls logged on the job and
    held to its token budget), else the offline statistical reasoner (tfidf-cluster-v1)."""
    settings = ctx.settings
    if not settings.llm_base_url:
        yield TfidfClusterReasoner()
        return
    log = DatabaseCallLog(
        ctx.sessionmaker, ctx.job_id, ctx.options.token_budget, settings.key_daily_tokens
    )
    await log.load_spent()
    chat = ChatClient(settings.llm_endpoint, transport=transport)
    client = LLMClient(
        chat, log, concurrency=settings.llm_concurrency, max_tokens=settings.llm_max_tokens
    )
    try:
        yield LLMReasoner(client, settings.discovery_steps(ctx.options.assignment_mode))
    finally:
        await chat.aclose()
