"""Exports: a finished job's images in column batches, one per page of images, in the export's
column order: file_name, class, caption, a column per dimension, and per prediction set its
prediction and whether it is right. Only one page is held at a time, whatever the job's size."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.exports import repository
from analysis_service.models import Job

Batch = list[list[object]]
"""Columns of equal length, in the export's column order."""


async def batches(
    session: AsyncSession, job: Job, dimensions: list[str], set_ids: list[int], size: int
) -> AsyncIterator[Batch]:
    """The job's exported images in image order, a batch per `size` of its images (fewer
    where some are left out); a dimension an image's class lacks, or a set without an answer
    for it, is None."""
    column_of = {name: k for k, name in enumerate(dimensions)}
    # attribute id -> (its dimension's column, its name): the pivot is a lookup per assignment.
    cell_of = {
        attribute_id: (column_of[dimension], name)
        for attribute_id, (dimension, name) in (
            await repository.attribute_names(session, job.id)
        ).items()
        if dimension in column_of
    }
    set_column = {set_id: k for k, set_id in enumerate(set_ids)}
    after = 0
    for last in await repository.page_ends(session, job.id, size):
        page = await repository.image_page(session, job.id, job.caption_key, after, last)
        after = last
        if not page:  # every image of the range left out: no empty row group
            continue
        ids = [row[0] for row in page]
        first, final = ids[0], ids[-1]
        at = {image_id: k for k, image_id in enumerate(ids)}
        count = len(ids)
        dims: Batch = [[None] * count for _ in dimensions]
        for image_id, attribute_id in await repository.assignments_between(
            session, job.id, first, final
        ):
            # Images of the range that the export leaves out have no row here.
            k = at.get(image_id)
            if k is not None and (cell := cell_of.get(attribute_id)) is not None:
                dims[cell[0]][k] = cell[1]
        answers: Batch = [[None] * count for _ in range(2 * len(set_ids))]
        if set_ids:
            for image_id, set_id, prediction, correct in await repository.predictions_between(
                session, job.id, set_ids, first, final
            ):
                if (k := at.get(image_id)) is not None:
                    column = 2 * set_column[set_id]
                    answers[column][k], answers[column + 1][k] = prediction, correct
        yield [
            [row[1] for row in page],
            [row[2] for row in page],
            [row[3] for row in page],
            *dims,
            *answers,
        ]
