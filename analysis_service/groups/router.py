"""HTTP route of group labels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from analysis_service.db import StreamingSession
from analysis_service.deps import MAX_ID, ClassName, JobId, Limit
from analysis_service.exports.writers import csv_chunks
from analysis_service.groups import repository, schemas, service
from analysis_service.jobs.service import finished_job
from analysis_service.predictions.service import prediction_set
from analysis_service.reasoners.names import MAX_NAME_CHARS

router = APIRouter(tags=["groups"])


@router.get(
    "/v1/jobs/{job_id}/groups",
    response_model=schemas.GroupPage,
    responses={200: {"content": {"text/csv": {}}}},
)
async def groups(
    job_id: JobId,
    session: StreamingSession,
    dimension: Annotated[
        str, Query(min_length=1, max_length=MAX_NAME_CHARS, description="The attribute `a`.")
    ],
    class_: ClassName = None,
    predictions: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="A prediction set giving `split`.")
    ] = None,
    format: Annotated[
        Literal["json", "csv"], Query(description="csv: every row, streamed.")
    ] = "json",
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Last image_id seen.")] = 0,
    limit: Limit = 1000,
) -> Any:
    """One row per image: filename, split, y (class), a (attribute of the dimension) and
    group = y * n_attributes + a: SubpopBench's layout, for DFR- or GroupDRO-style training."""
    job = await finished_job(session, job_id, "group labels are available")
    labels = await service.labels(session, job, dimension, class_)
    set_id = None if predictions is None else (await prediction_set(session, job, predictions)).id
    if format == "csv":
        result = await repository.stream_groups(session, job.id, dimension, labels.classes, set_id)

        async def rows() -> AsyncIterator[list[object]]:
            async for row in result:
                yield labels.csv_row(row)

        return StreamingResponse(
            csv_chunks(service.CSV_COLUMNS, rows()),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="groups-{job.id}.csv"'},
        )
    found = await repository.group_page(
        session, job.id, dimension, labels.classes, set_id, after, limit + 1
    )
    items = []
    for image_id, filename, class_name, attribute, split in found[:limit]:
        y, a, group = labels.row(class_name, attribute)
        items.append(
            schemas.GroupRow(
                image_id=image_id,
                filename=filename,
                split=split,
                y=y,
                a=a,
                group=group,
                class_=class_name,
                attribute=attribute,
            )
        )
    return schemas.GroupPage(
        dimension=dimension,
        classes=labels.classes,
        attributes=labels.attributes,
        n_groups=len(labels.classes) * len(labels.attributes),
        items=items,
        next_after=items[-1].image_id if len(found) > limit else None,
    )
