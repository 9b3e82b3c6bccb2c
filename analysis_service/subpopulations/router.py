"""HTTP routes of discovered subpopulations."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Query

from analysis_service.db import Session
from analysis_service.deps import Limit, Offset
from analysis_service.jobs.service import JobNotFound, parse_job_id
from analysis_service.models import Job
from analysis_service.schemas import Page
from analysis_service.subpopulations import repository
from analysis_service.subpopulations import schemas as s
from shared.errors import ERROR_RESPONSES, Conflict, NotFound

router = APIRouter(tags=["subpopulations"], responses=ERROR_RESPONSES)


async def _finished_job(session: Session, raw_id: str) -> Job:
    job_id = parse_job_id(raw_id)
    job = await session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"job '{raw_id}' not found")
    if job.status != "succeeded":
        raise Conflict(
            f"job '{raw_id}' is {job.status}; subpopulations are available once it has succeeded"
        )
    return job


@router.get("/v1/jobs/{job_id}/subpopulations", response_model=list[s.Subpopulation])
async def list_subpopulations(
    job_id: str,
    session: Session,
    class_: str | None = Query(default=None, alias="class", description="Only this class."),
    dimension: str | None = Query(default=None, description="Only this dimension."),
    min_size: int = Query(default=0, ge=0, description="Only subpopulations this large."),
) -> list[s.Subpopulation]:
    """Every (class, dimension, attribute) with its size and share of the class."""
    job = await _finished_job(session, job_id)
    rows = await repository.subpopulations(session, job.id, class_, dimension, min_size)
    return [
        s.Subpopulation(
            id=r.id,
            class_=r.class_name,
            dimension=r.dimension,
            attribute=r.attribute,
            is_other=r.is_other,
            size=r.size,
            share=r.share,
        )
        for r in rows
    ]


@router.get("/v1/jobs/{job_id}/structure", response_model=s.Structure)
async def get_structure(job_id: str, session: Session) -> s.Structure:
    """The discovered tree: class -> dimension -> attribute (size, share)."""
    job = await _finished_job(session, job_id)
    rows = await repository.subpopulations(session, job.id, None, None, 0)
    tree: dict[str, dict[str, list[s.AttributeNode]]] = defaultdict(dict)
    for r in rows:
        tree[r.class_name].setdefault(r.dimension, []).append(
            s.AttributeNode(
                id=r.id, attribute=r.attribute, is_other=r.is_other, size=r.size, share=r.share
            )
        )
    sizes = await repository.class_sizes(session, job.id)
    classes = [
        s.ClassNode(
            class_=name,
            images=images,
            dimensions=[s.DimensionNode(dimension=d, attributes=a) for d, a in tree[name].items()],
        )
        for name, images in sizes.items()
    ]
    return s.Structure(job_id=str(job.id), classes=classes)


@router.get(
    "/v1/subpopulations/{subpopulation_id}/images", response_model=Page[s.SubpopulationImage]
)
async def subpopulation_images(
    subpopulation_id: int, session: Session, limit: Limit = 100, offset: Offset = 0
) -> Page[s.SubpopulationImage]:
    """The images of one subpopulation, with their path in the dataset and caption."""
    found = await repository.subpopulation_job(session, subpopulation_id)
    if found is None:
        raise NotFound(f"subpopulation {subpopulation_id} not found")
    rows, total = await repository.images_of(
        session, subpopulation_id, found.caption_key, limit, offset
    )
    items = [
        s.SubpopulationImage(image_id=r.id, path=r.relpath, class_=r.class_name, caption=r.text)
        for r in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)
