"""The reasoning side of discovery, behind one protocol: an LLM when LLM_BASE_URL is set,
else the offline lexicon reasoner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from analysis_service.reasoners.base import Reasoner

if TYPE_CHECKING:
    from analysis_service.pipeline.context import RunContext


def stage_config(settings, options: dict):  # type: ignore[no-untyped-def]
    from analysis_service.reasoners.llm import StageConfig

    return StageConfig(
        dimension_rounds=settings.dimension_rounds,
        dimension_captions=settings.dimension_captions,
        dimension_threshold=settings.dimension_threshold,
        dimensions_per_round=settings.dimensions_per_round,
        attribute_rounds=settings.attribute_rounds,
        attribute_captions=settings.attribute_captions,
        max_attributes=settings.max_attributes,
        refine_rounds=settings.refine_rounds,
        refine_repeats=settings.refine_repeats,
        captions_per_call=settings.assign_captions_per_call,
        assignment_mode=options.get("assignment_mode") or settings.assignment_mode,
    )


@asynccontextmanager
async def open_reasoner(
    ctx: RunContext, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Reasoner]:
    settings = ctx.settings
    if not settings.llm_base_url:
        from analysis_service.reasoners.lexicon import LexiconReasoner

        yield LexiconReasoner()
        return
    from analysis_service.reasoners.llm import LLMReasoner
    from analysis_service.reasoners.llm_client import LLMClient, LLMConfig
    from analysis_service.reasoners.llm_log import DatabaseCallLog

    log = DatabaseCallLog(ctx.sessionmaker, ctx.job_id, ctx.options.get("token_budget"))
    await log.load_spent()
    config = LLMConfig(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        retry_base_delay_s=settings.llm_retry_base_delay_s,
        concurrency=settings.llm_concurrency,
        max_tokens=settings.llm_max_tokens,
    )
    client = LLMClient(config, log, transport=transport)
    try:
        yield LLMReasoner(client, stage_config(settings, ctx.options))
    finally:
        await client.aclose()
