"""HTTP route of exports: one row per image, streamed as Parquet, CSV or JSONL."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from analysis_service.db import StreamingSession
from analysis_service.deps import JobId
from analysis_service.exports import repository, service, writers
from analysis_service.jobs.service import finished_job
from analysis_service.predictions import repository as predictions
from analysis_service.subpopulations.service import class_structure

router = APIRouter(tags=["exports"])
MEDIA = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "jsonl": "application/jsonl",
}


@router.get(
    "/v1/jobs/{job_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in MEDIA.values()}}},
)
async def export(
    job_id: JobId,
    session: StreamingSession,
    format: Annotated[
        Literal["parquet", "csv", "jsonl"], Query(description="The file format.")
    ] = "parquet",
) -> StreamingResponse:
    """Every image of a finished job: file_name, class, caption, a column per dimension, and
    per prediction set its prediction and whether it is right; streamed for jobs of any size.
    CSV cells that a spreadsheet would run as formulas are escaped."""
    job = await finished_job(session, job_id, "exports are available")
    tree = await class_structure(session, job)
    dimensions = list(dict.fromkeys(d for dims in tree.values() for d in dims))
    sets = await predictions.list_sets(session, job.id)
    names = [s.name or f"predictions_{s.id}" for s in sets]
    header, schema = writers.header_and_types(dimensions, names)
    await repository.snapshot(session)
    # A page of images is a Parquet row group; sets posted from here on are not in the header.
    batches = service.batches(session, job, dimensions, [s.id for s in sets], writers.BATCH_ROWS)
    body = (
        writers.parquet_chunks(schema, batches)
        if format == "parquet"
        else (writers.csv_chunks if format == "csv" else writers.jsonl_chunks)(
            header, writers.rows_of(batches)
        )
    )
    filename = f"export-{job.id}.{format}"
    return StreamingResponse(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
