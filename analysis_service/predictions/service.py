"""Prediction sets: read (a file inside the data roots, an upload or inline rows), checked
against the finished job, stored."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.jobs.service import finished_job
from analysis_service.models import Job, PredictionSet
from analysis_service.predictions import reader, repository, schemas
from analysis_service.predictions.reader import PredictionRow, PredictionsError, Problems
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.files import UnreadableFile, open_inside_roots
from shared.paths import resolve_file_inside_roots

WHAT = "predictions are taken"


class PredictionSetNotFound(NotFound):
    """Prediction set not found."""


def to_schema(found: PredictionSet) -> schemas.PredictionSetOut:
    return schemas.PredictionSetOut(
        id=found.id,
        name=found.name,
        rows=found.rows,
        matched=found.rows,
        errors=found.errors,
        accuracy=schemas.accuracy(found.rows, found.errors),
        created_at=found.created_at,
    )


async def prediction_set(session: AsyncSession, job: Job, set_id: int) -> PredictionSet:
    """The job's set of that id, or 404 naming the sets it has."""
    found = await repository.get_set(session, job.id, set_id)
    if found is None:
        sets = [s.id for s in await repository.list_sets(session, job.id)]
        have = ", ".join(map(str, sets)) if sets else "none yet (POST /predictions)"
        raise PredictionSetNotFound(f"predictions {set_id} not found; this job's sets: {have}")
    return found


def _open_path(raw: str, roots: list[Path]) -> tuple[BinaryIO, reader.Format]:
    """The checked open file of a path inside the data roots (touches the disk: in a thread)."""
    path = resolve_file_inside_roots(raw, roots, "a CSV or JSONL file of predictions")
    try:
        opened = open_inside_roots(path, roots)
    except UnreadableFile as exc:
        raise PredictionsError(f"predictions_path: {exc}") from None
    size = os.fstat(opened.fileno()).st_size
    if size > reader.MAX_FILE_BYTES:
        opened.close()
        raise PredictionsError(
            f"predictions_path: file too large: {size} bytes > {reader.MAX_FILE_BYTES}"
        )
    return opened, reader.format_of(path.name)


async def _stage_chunks(session: AsyncSession, chunks: Iterator[list[PredictionRow]]) -> int:
    """Stage every chunk (each read in a thread); how many rows were staged."""
    staged = 0
    while (chunk := await asyncio.to_thread(reader.pull, chunks)) is not None:
        await repository.stage(session, chunk)
        staged += len(chunk)
    return staged


async def _store(
    session: AsyncSession, job: Job, name: str | None, staged: int, problems: Problems
) -> PredictionSet:
    """Check the staged rows against the job and store them as a new set; 422 naming the rows
    of every problem found."""
    problems.raise_any()
    if staged == 0:
        raise PredictionsError("no predictions: the file or list holds no rows")
    classes = await repository.job_classes(session, job.id)
    found = await repository.staged_problems(session, job.id, job.dataset_id, classes)
    for problem in found:
        for row, value in problem.listed:
            problems.add(problem.kind, row, repr(value))
        problems.counts[problem.kind] = problem.total
    if found:
        shown = ", ".join(classes[:50])
        raise PredictionsError(f"{problems.message()}. The job's classes: {shown}")
    return await repository.store(session, job.id, job.dataset_id, name)


async def _start(session: AsyncSession, raw_job_id: str, name: str | None) -> Job:
    job = await finished_job(session, raw_job_id, WHAT)
    if name is not None and await repository.name_taken(session, job.id, name):
        raise Conflict(f"this job already has predictions named '{name}'")
    await repository.create_staging(session)
    return job


async def create_from_body(
    session: AsyncSession, roots: list[Path], raw_job_id: str, body: schemas.PredictionsCreate
) -> PredictionSet:
    """A set from a path inside the data roots or inline rows (exactly one of them)."""
    job = await _start(session, raw_job_id, body.name)
    if (body.predictions_path is None) == (body.predictions is None):
        raise InvalidRequest("send exactly one of predictions_path and predictions")
    problems = Problems()
    if body.predictions is not None:
        rows = reader.read_inline(
            [p.model_dump(exclude_none=True) for p in body.predictions], problems
        )
        if rows:
            await repository.stage(session, rows)
        return await _store(session, job, body.name, len(rows), problems)
    assert body.predictions_path is not None
    opened, fmt = await asyncio.to_thread(_open_path, body.predictions_path, roots)
    with closing(opened):
        staged = await _stage_chunks(session, reader.read_file(opened, fmt, problems))
    return await _store(session, job, body.name, staged, problems)


async def create_from_upload(
    session: AsyncSession, raw_job_id: str, upload: BinaryIO, filename: str, name: str | None
) -> PredictionSet:
    """A set from an uploaded CSV or JSONL file (already held to MAX_REQUEST_BYTES)."""
    job = await _start(session, raw_job_id, name)
    problems = Problems()
    chunks = reader.read_file(upload, reader.format_of(filename), problems)
    staged = await _stage_chunks(session, chunks)
    return await _store(session, job, name, staged, problems)
