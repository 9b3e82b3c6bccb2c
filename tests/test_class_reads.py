"""Discovery reads a job one class at a time (a sample of its captions, then pages of its images
without assignments): each read finds the class's images by index and reads about as many
rows as the class has, not every image of the job (or of every dataset) once per read, which
made a 1,000-class job's discovery read the image table thousands of times over."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from analysis_service.assignments import repository as assignments
from analysis_service.captions import repository as captions
from benchmarks.synthetic_job import SyntheticImage, insert_job

PER_CLASS = 30
CLASSES = [f"class{k:03d}" for k in range(150)]
IMAGES = [
    SyntheticImage(f"{c}/{i:02d}.jpg", c, caption=f"a {c} number {i}")
    for c in CLASSES
    for i in range(PER_CLASS)
]
#: Another dataset's images (other files: captions are keyed by content), in classes of
#: the same names.
OTHER = [
    SyntheticImage(f"{c}/other{i:02d}.jpg", c, caption=f"other {i}")
    for c in CLASSES
    for i in range(10)
]
#: What a job's images are read from.
IMAGE_TABLES = {"image", "job_image"}


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's nodes read from the image tables, those its filters threw away too."""
    read = 0
    if plan.get("Relation Name") in IMAGE_TABLES:
        kept = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        read += kept * plan["Actual Loops"]
    return read + sum(_rows_read(child) for child in plan.get("Plans", []))


@pytest.fixture
async def job_id(sessionmaker):
    async with sessionmaker() as session, session.begin():
        await insert_job(session, OTHER)
        job = await insert_job(session, IMAGES)
    async with sessionmaker() as session, session.begin():
        for table in ("image", "job_image", "caption", "assignment"):
            await session.execute(text(f"ANALYZE {table}"))
    return job


async def _reads_of(sessionmaker, read) -> tuple[Any, list[int]]:
    """What read(session) returns, and the rows each of its statements reads from the image
    tables when run again under EXPLAIN ANALYZE."""
    sent: list[tuple[str, Any]] = []
    engine = sessionmaker.kw["bind"].sync_engine

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        async with sessionmaker() as session:
            found = await read(session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    reads = []
    async with sessionmaker() as session:
        connection = await session.connection()
        for statement, parameters in sent:
            explained = await connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            )
            reads.append(_rows_read(explained.scalar_one()[0]["Plan"]))
    return found, reads


async def test_a_class_sample_reads_only_that_class_of_the_job(sessionmaker, job_id):
    def read(session):
        return captions.sample_captions(session, job_id, "class007", False, 0, 2000)

    sample, reads = await _reads_of(sessionmaker, read)
    assert sorted(sample) == sorted(f"a class007 number {i}" for i in range(PER_CLASS))
    # The class's images, and its links to the job: not the job's 4,500 or the table's 6,000.
    assert reads and max(reads) <= 2 * PER_CLASS + 10, reads


async def test_a_page_of_unassigned_images_reads_only_that_class_of_the_job(sessionmaker, job_id):
    def read(session):
        return assignments.unassigned_page(session, job_id, "class007", False, 0, 10)

    page, reads = await _reads_of(sessionmaker, read)
    assert [caption for _, caption in page] == [f"a class007 number {i}" for i in range(10)]
    assert reads and max(reads) <= 2 * PER_CLASS + 10, reads
