"""HTTP routes of discovered subpopulations."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from analysis_service import cursors
from analysis_service.cursors import After
from analysis_service.db import Session, StreamingSession
from analysis_service.deps import (
    MAX_OFFSET,
    ClassName,
    DimensionName,
    JobId,
    Limit,
    Offset,
    RowId,
)
from analysis_service.exports.writers import csv_chunks
from analysis_service.jobs.lifecycle import JobStatus
from analysis_service.jobs.service import finished_job
from analysis_service.models import Job
from analysis_service.schemas import CursorPage
from analysis_service.subpopulations import repository
from analysis_service.subpopulations import schemas as s
from shared.errors import NotFound

router = APIRouter(tags=["subpopulations"])


async def _finished_job(session: Session, raw_id: str) -> Job:
    return await finished_job(session, raw_id, "subpopulations are available")


@router.get("/v1/jobs/{job_id}/subpopulations", response_model=CursorPage[s.Subpopulation])
async def list_subpopulations(
    job_id: JobId,
    session: Session,
    class_: ClassName = None,
    dimension: DimensionName = None,
    min_size: int = Query(
        default=0, ge=0, le=MAX_OFFSET, description="Only subpopulations this large."
    ),
    limit: int = Query(default=100, ge=1, le=10000, description="Page size."),
    after: After = None,
) -> CursorPage[s.Subpopulation]:
    """Every (class, dimension, attribute) with its size and share of the class, by class
    and in the order discovery gave them; a page at a time (follow `next`)."""
    job = await _finished_job(session, job_id)
    key = cursors.decode(after, *repository.SUBPOPULATION_KEY) if after else None
    rows = await repository.subpopulations(session, job.id, class_, dimension, min_size, limit, key)
    last = rows[-1] if len(rows) == limit else None
    items = [
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
    next_key = (last.class_name, last.dimension_position, last.position, last.id) if last else None
    return CursorPage(items=items, limit=limit, next=cursors.encode(next_key) if next_key else None)


@router.get("/v1/jobs/{job_id}/structure", response_model=s.Structure)
async def get_structure(job_id: JobId, session: Session, class_: ClassName = None) -> s.Structure:
    """The discovered tree: class -> dimension -> attribute (size, share); of one class with
    `class` (a thousand-class job's whole tree is large)."""
    job = await _finished_job(session, job_id)
    rows = await repository.subpopulations(session, job.id, class_, None, 0)
    tree: dict[str, dict[str, list[s.AttributeNode]]] = defaultdict(dict)
    for r in rows:
        tree[r.class_name].setdefault(r.dimension, []).append(
            s.AttributeNode(
                id=r.id, attribute=r.attribute, is_other=r.is_other, size=r.size, share=r.share
            )
        )
    sizes = await repository.class_sizes(session, job.id, class_)
    classes = [
        s.ClassNode(
            class_=name,
            images=images,
            dimensions=[s.DimensionNode(dimension=d, attributes=a) for d, a in tree[name].items()],
        )
        for name, images in sizes.items()
    ]
    return s.Structure(job_id=str(job.id), classes=classes)


@router.get("/v1/subpopulations/{subpopulation_id}/images", response_model=s.SubpopulationImagePage)
async def subpopulation_images(
    subpopulation_id: RowId,
    session: Session,
    limit: Limit = 100,
    offset: Offset = 0,
    after: After = None,
) -> s.SubpopulationImagePage:
    """The images of one subpopulation by image id, with their path in the dataset and caption;
    a page at a time: follow `next` (`offset` still works, but costs what it skips)."""
    found = await repository.subpopulation_job(session, subpopulation_id)
    if found is None:
        raise NotFound(f"subpopulation {subpopulation_id} not found")
    key = cursors.decode(after, *repository.IMAGE_KEY) if after else None
    # One row more than asked says whether another page follows.
    rows = await repository.images_of(
        session, subpopulation_id, found.caption_key, limit + 1, offset, key
    )
    # A finished job's sizes are final (summarize counted them): no count per page.
    total = (
        found.size
        if found.status == JobStatus.SUCCEEDED
        else await repository.count_images(session, subpopulation_id)
    )
    items = [
        s.SubpopulationImage(image_id=r.id, path=r.relpath, class_=r.class_name, caption=r.text)
        for r in rows[:limit]
    ]
    next_key = cursors.encode((items[-1].image_id,)) if len(rows) > limit else None
    return s.SubpopulationImagePage(
        items=items, total=total, limit=limit, offset=offset, next=next_key
    )


CSV_COLUMNS = ["image", "class", "dimension", "attribute", "note"]


@router.get(
    "/v1/jobs/{job_id}/assignments",
    response_model=s.AssignmentPage,
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_assignments(
    job_id: JobId,
    session: StreamingSession,
    format: Literal["json", "csv"] = Query(default="json", description="csv: every row, streamed."),
    limit: int = Query(default=1000, ge=1, le=10000),
    offset: Offset = 0,
    after: After = None,
) -> Any:
    """One row per image and dimension: image, class, dimension, attribute. JSON pages go
    in image order (the scan's), a page at a time: follow `next` (`offset` still works, but
    costs what it skips); CSV streams every row in path order."""
    job = await _finished_job(session, job_id)
    if format == "csv":
        result = await repository.stream_assignments(session, job.id)

        async def cells() -> AsyncIterator[list[object]]:
            async for row in result:
                yield list(row)

        return StreamingResponse(
            csv_chunks(CSV_COLUMNS, cells()),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="assignments-{job.id}.csv"'},
        )
    key = cursors.decode(after, *repository.ASSIGNMENT_KEY) if after else None
    rows = await repository.assignments_keyset_page(session, job.id, limit, offset, key)
    total = await repository.count_assignments(session, job.id)
    items = [
        s.AssignmentRow(image=r[0], class_=r[1], dimension=r[2], attribute=r[3], note=r[4])
        for r in rows
    ]
    next_key = cursors.encode((rows[-1][5], rows[-1][6])) if len(rows) == limit else None
    return s.AssignmentPage(items=items, total=total, limit=limit, offset=offset, next=next_key)
