"""HTTP routes of rare subpopulations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from analysis_service.db import Session
from analysis_service.deps import ClassName, DimensionName, JobId, Limit, Offset, Settings
from analysis_service.jobs.service import finished_job
from analysis_service.tail import schemas, service

router = APIRouter(prefix="/v1/jobs/{job_id}/tail", tags=["tail"])
MaxShare = Annotated[
    float,
    Query(
        gt=0,
        le=1,
        description="Attributes whose share of their class is below this (0 < max_share <= 1).",
    ),
]


@router.get("", response_model=schemas.TailPage)
async def list_tail(
    job_id: JobId,
    session: Session,
    max_share: MaxShare = 0.05,
    class_: ClassName = None,
    dimension: DimensionName = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.TailPage:
    """Rare subpopulations, rarest first: per class and dimension the attributes below
    max_share (`other` left out), each with a template prompt for a text-to-image model and
    the LLM's prompt once POST /tail wrote one."""
    job = await finished_job(session, job_id, service.WHAT)
    return await service.tail(session, job, max_share, class_, dimension, limit, offset)


@router.post("", response_model=schemas.TailPromptsWritten)
async def write_tail_prompts(
    job_id: JobId,
    request: Request,
    settings: Settings,
    max_share: MaxShare = 0.05,
    class_: ClassName = None,
    dimension: DimensionName = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=service.MAX_PROMPTS_PER_REQUEST,
            description="Attributes asked about in this request (one LLM call each).",
        ),
    ] = 50,
) -> schemas.TailPromptsWritten:
    """The LLM writes prompts for the rarest `limit` tail attributes without one (spending
    tokens, on the job's call log and budget); 409 when no LLM is configured. POST again
    while `remaining` is above 0."""
    return await service.write_prompts(
        request.app.state.sessionmaker, settings, job_id, max_share, class_, dimension, limit
    )
