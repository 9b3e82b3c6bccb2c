"""Rare subpopulations: each dimension's attributes below a share of their class, with a
template prompt for a text-to-image model and, once asked for, one an LLM wrote.

An LLM writes prompts inside the POST request, a bounded number at a time: each stored as
soon as its answer is valid, so an interrupted request loses nothing and the next one goes on
with the attributes still without a prompt (identical requests are answered from the call log
and cost nothing)."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.jobs.schemas import JobOptions
from analysis_service.jobs.service import finished_job
from analysis_service.models import Job
from analysis_service.reasoners import llm_prompts
from analysis_service.reasoners.budget import BudgetExceeded
from analysis_service.reasoners.factory import open_llm_client
from analysis_service.reasoners.llm import Step
from analysis_service.reasoners.llm_client import LLMClient, LLMError
from analysis_service.settings import AnalysisSettings
from analysis_service.tail import repository, schemas
from shared.concurrency import run_all
from shared.errors import Conflict, NotFound, Unavailable

WHAT = "its rare subpopulations are listed"
#: Tail attributes one POST asks the LLM about, at most: one call each (two when an answer
#: needs a repair), so a request ends in bounded time; POST again for the rest.
MAX_PROMPTS_PER_REQUEST = 200
#: Captions of an attribute's images shown to the LLM as examples.
EXAMPLE_CAPTIONS = 5


def subject_of(class_name: str) -> str:
    """A class folder's name as words ("red_kite" -> "red kite")."""
    return re.sub(r"[_\s]+", " ", class_name).strip() or class_name


def template_prompt(class_name: str, dimension: str, attribute: str) -> str:
    subject = subject_of(class_name)
    article = "an" if subject[:1].lower() in "aeiou" else "a"
    return f"a photo of {article} {subject}, {dimension}: {attribute}"


def _item(row: Row, prompt: str | None, model: str | None) -> schemas.TailAttribute:
    return schemas.TailAttribute(
        attribute_id=row.id,
        class_=row.class_name,
        dimension=row.dimension,
        attribute=row.attribute,
        size=row.size,
        share=row.share,
        template_prompt=template_prompt(row.class_name, row.dimension, row.attribute),
        llm_prompt=prompt,
        llm_model=model,
    )


async def tail(
    session: AsyncSession,
    job: Job,
    max_share: float,
    class_name: str | None,
    dimension: str | None,
    limit: int,
    offset: int,
) -> schemas.TailPage:
    rows, total = await repository.tail_page(
        session, job.id, max_share, class_name, dimension, limit, offset
    )
    return schemas.TailPage(
        max_share=max_share,
        items=[_item(r, r.prompt, r.model) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


async def write_prompts(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: AnalysisSettings,
    raw_job_id: str,
    max_share: float,
    class_name: str | None,
    dimension: str | None,
    limit: int,
) -> schemas.TailPromptsWritten:
    """Prompts by the LLM for the rarest `limit` tail attributes that have none yet."""
    if not settings.llm_base_url:
        raise Conflict(
            "no LLM is configured (set LLM_BASE_URL); the template prompts are in "
            f"GET /v1/jobs/{raw_job_id}/tail"
        )
    # Short sessions: none is held while the LLM answers.
    async with sessionmaker() as session:
        job = await finished_job(session, raw_job_id, WHAT)
        rows, missing = await repository.without_prompt(
            session, job.id, max_share, class_name, dimension, limit
        )
        ids = [r.id for r in rows]
        others = await repository.other_attributes(session, ids)
        captions = await repository.example_captions(
            session, ids, job.caption_key, EXAMPLE_CAPTIONS
        )
    options = JobOptions.model_validate(job.options or {})
    written: list[schemas.TailAttribute] = []
    failed: list[schemas.TailFailure] = []
    slots = asyncio.Semaphore(settings.llm_concurrency)

    async def one(llm: LLMClient, row: Row) -> None:
        ask = llm_prompts.image_prompt(
            subject_of(row.class_name),
            row.dimension,
            row.attribute,
            others[row.id],
            captions[row.id],
        )
        async with slots:
            answer = await llm.ask(
                step=Step.TAIL_PROMPT,
                subject=row.class_name,
                messages=ask.messages,
                answer=ask.answer,
                seed=options.seed,
            )
            if answer.data is None:
                failed.append(
                    schemas.TailFailure(
                        attribute_id=row.id,
                        class_=row.class_name,
                        dimension=row.dimension,
                        attribute=row.attribute,
                        problem=answer.problem or "no valid answer",
                    )
                )
                return
            try:
                async with sessionmaker() as session, session.begin():
                    await repository.store_prompt(
                        session, job.id, row.id, answer.data.prompt, llm.model
                    )
            except IntegrityError:  # the job was deleted meanwhile
                raise NotFound(f"job '{raw_job_id}' was deleted") from None
            written.append(_item(row, answer.data.prompt, llm.model))

    kept = "; the prompts written before it are kept"
    async with open_llm_client(settings, sessionmaker, job.id, options.token_budget) as llm:
        try:
            await run_all(*(one(llm, row) for row in rows))
        except BudgetExceeded as exc:
            raise Conflict(f"{exc}{kept}") from None
        except LLMError as exc:
            raise Unavailable(f"{exc}{kept}") from None
        model = llm.model
    order = {row.id: i for i, row in enumerate(rows)}
    written.sort(key=lambda item: order[item.attribute_id])
    failed.sort(key=lambda item: order[item.attribute_id])
    return schemas.TailPromptsWritten(
        max_share=max_share,
        model=model,
        written=written,
        failed=failed,
        remaining=missing - len(written),
    )
