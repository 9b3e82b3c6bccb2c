"""HTTP route of exports: one row per image, streamed as Parquet, CSV or JSONL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncResult

from analysis_service.db import Session
from analysis_service.deps import JobId
from analysis_service.exports import repository, writers
from analysis_service.jobs.service import finished_job
from analysis_service.predictions import repository as predictions
from analysis_service.subpopulations.service import class_structure

router = APIRouter(tags=["exports"])
MEDIA = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "jsonl": "application/jsonl",
}


async def _rows(
    result: AsyncResult, dimensions: list[str], set_ids: list[str]
) -> AsyncIterator[list[object]]:
    """Each image's row in the export's column order (empty where its class lacks one)."""
    async for relpath, class_name, caption, dims, preds in result:
        dims, preds = dims or {}, preds or {}
        row: list[object] = [relpath, class_name, caption, *(dims.get(d) for d in dimensions)]
        for set_id in set_ids:
            prediction, correct = preds.get(set_id, (None, None))
            row += [prediction, correct]
        yield row


@router.get(
    "/v1/jobs/{job_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in MEDIA.values()}}},
)
async def export(
    job_id: JobId,
    session: Session,
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
    rows = _rows(
        await repository.stream_rows(session, job.id), dimensions, [str(s.id) for s in sets]
    )
    body = (
        writers.parquet_chunks(schema, rows)
        if format == "parquet"
        else (writers.csv_chunks if format == "csv" else writers.jsonl_chunks)(header, rows)
    )
    filename = f"export-{job.id}.{format}"
    return StreamingResponse(
        body,
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
