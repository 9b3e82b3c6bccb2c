"""A class's structure is written once, as proposed: dimensions in order, each one's
attributes in order without repeats and with 'other' last (whatever the proposal said of it),
and a second write of the same class changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from analysis_service.assignments import repository as assignments
from analysis_service.models import Attribute, Dimension
from analysis_service.reasoners.base import OTHER, DimensionProposal
from benchmarks.synthetic_job import SyntheticImage, insert_job

PROPOSED = [
    DimensionProposal("background", ["water", OTHER, "grass", "water", "snow"]),
    DimensionProposal("pose", ["sitting"]),
    DimensionProposal("lighting", []),
]


async def _rows(session, job_id) -> list[tuple]:
    query = (
        select(Dimension.name, Dimension.position, Attribute.name, Attribute.position)
        .add_columns(Attribute.is_other, Attribute.size, Attribute.share, Dimension.class_name)
        .join(Attribute, Attribute.dimension_id == Dimension.id)
        .where(Dimension.job_id == job_id, Attribute.job_id == job_id)
        .order_by(Dimension.position, Attribute.position)
    )
    return [tuple(row) for row in await session.execute(query)]


async def test_a_class_structure_is_written_once_in_the_proposed_order(sessionmaker):
    async with sessionmaker() as session, session.begin():
        job_id = await insert_job(session, [SyntheticImage("cat/1.jpg", "cat")])
    async with sessionmaker() as session, session.begin():
        assert await assignments.write_structure(session, job_id, "cat", PROPOSED)
    async with sessionmaker() as session, session.begin():
        assert not await assignments.write_structure(session, job_id, "cat", PROPOSED[:1])
    async with sessionmaker() as session:
        rows = await _rows(session, job_id)
        found = await assignments.structure(session, job_id, "cat")
        progress = await assignments.class_progress(session, job_id, "cat")
    expected = [
        ("background", 0, "water", 0, False),
        ("background", 0, "grass", 1, False),
        ("background", 0, "snow", 2, False),
        ("background", 0, OTHER, 3, True),
        ("pose", 1, "sitting", 0, False),
        ("pose", 1, OTHER, 1, True),
        ("lighting", 2, OTHER, 0, True),
    ]
    assert rows == [(*row, 0, 0.0, "cat") for row in expected]
    assert [(d.name, d.attributes) for d in found.dimensions] == [
        ("background", ["water", "grass", "snow"]),
        ("pose", ["sitting"]),
        ("lighting", []),
    ]
    assert progress.structured_at is not None


async def test_a_class_proposed_nothing_is_structured_with_no_dimension(sessionmaker):
    async with sessionmaker() as session, session.begin():
        job_id = await insert_job(session, [SyntheticImage("cat/1.jpg", "cat")])
    async with sessionmaker() as session, session.begin():
        assert await assignments.write_structure(session, job_id, "cat", [])
    async with sessionmaker() as session:
        assert await _rows(session, job_id) == []
        assert (await assignments.class_progress(session, job_id, "cat")).structured_at
