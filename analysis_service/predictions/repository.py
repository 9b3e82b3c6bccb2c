"""Every SQL statement about prediction sets: staging an upload, checking it against the
job's images and classes, storing it, and listing sets."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from sqlalchemy import Integer, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from analysis_service.models import Image, JobImage, PredictionSet
from analysis_service.predictions.reader import MAX_LISTED, PredictionRow

# Rows are staged in a temporary table so that every check against the job (its images, its
# classes, duplicates) is one query however large the file; it goes with the transaction.
CREATE_STAGING = text(
    """
    CREATE TEMPORARY TABLE prediction_staging (
        row integer NOT NULL, image text NOT NULL, prediction text NOT NULL, label text,
        confidence double precision, split text
    ) ON COMMIT DROP
    """
)
STAGE = text(
    """
    INSERT INTO prediction_staging
    SELECT * FROM unnest(
        CAST(:rows AS integer[]), CAST(:images AS text[]), CAST(:predictions AS text[]),
        CAST(:labels AS text[]), CAST(:confidences AS double precision[]),
        CAST(:splits AS text[])
    )
    """
)
# Each staged row with the job's image of that name (NULL when the job has none) and the
# true class: the row's label, else the image's class.
_MATCHED = """
    SELECT s.*, ji.image_id, coalesce(s.label, i.class_name) AS truth
    FROM prediction_staging s
    LEFT JOIN image i ON i.dataset_id = :dataset_id AND i.relpath = s.image
        AND EXISTS (SELECT 1 FROM job_image x WHERE x.job_id = :job_id AND x.image_id = i.id)
    LEFT JOIN job_image ji ON ji.job_id = :job_id AND ji.image_id = i.id
"""
# Problems found against the job, by kind: the listed rows and the count of each.
CHECKS = {
    "name an image more than once": """
        SELECT row, image FROM (
            SELECT row, image, count(*) OVER (PARTITION BY image) AS n FROM prediction_staging
        ) d WHERE n > 1
    """,
    "name images not in the job": f"SELECT row, image FROM ({_MATCHED}) m WHERE image_id IS NULL",
    "name a true class not in the job": f"""
        SELECT row, coalesce(truth, '(none)') FROM ({_MATCHED}) m
        WHERE image_id IS NOT NULL AND (truth IS NULL OR truth <> ALL(:classes))
    """,
    "predict a class not in the job": """
        SELECT row, prediction FROM prediction_staging WHERE prediction <> ALL(:classes)
    """,
}
STORE = text(
    f"""
    INSERT INTO prediction (set_id, image_id, job_id, label, prediction, correct, confidence,
                            split)
    SELECT :set_id, image_id, :job_id, truth, prediction, prediction = truth, confidence, split
    FROM ({_MATCHED}) m
    """
)

COUNTS = text(
    "SELECT count(*), count(*) FILTER (WHERE NOT correct) FROM prediction WHERE set_id = :set_id"
)


class Problem(NamedTuple):
    kind: str
    total: int
    listed: list[tuple[int, str]]


async def job_classes(session: AsyncSession, job_id: uuid.UUID) -> list[str]:
    """The classes of the job's images, by name."""
    rows = await session.scalars(
        select(Image.class_name)
        .join(JobImage, JobImage.image_id == Image.id)
        .where(JobImage.job_id == job_id, Image.class_name.is_not(None))
        .distinct()
        .order_by(Image.class_name)
    )
    return [name for name in rows if name is not None]


async def name_taken(session: AsyncSession, job_id: uuid.UUID, name: str) -> bool:
    found = await session.scalar(
        select(PredictionSet.id).where(PredictionSet.job_id == job_id, PredictionSet.name == name)
    )
    return found is not None


async def create_staging(session: AsyncSession) -> None:
    await session.execute(CREATE_STAGING)


async def stage(session: AsyncSession, rows: list[PredictionRow]) -> None:
    await session.execute(
        STAGE,
        {
            "rows": [r.row for r in rows],
            "images": [r.image for r in rows],
            "predictions": [r.prediction for r in rows],
            "labels": [r.label for r in rows],
            "confidences": [r.confidence for r in rows],
            "splits": [r.split for r in rows],
        },
    )


async def staged_problems(
    session: AsyncSession, job_id: uuid.UUID, dataset_id: uuid.UUID, classes: list[str]
) -> list[Problem]:
    """What is wrong with the staged rows against the job, kind by kind (none: all good)."""
    params = {"job_id": job_id, "dataset_id": dataset_id, "classes": classes}
    found = []
    for kind, query in CHECKS.items():
        count = await session.scalar(text(f"SELECT count(*) FROM ({query}) q"), params)
        if count:
            listed = await session.execute(
                text(f"SELECT * FROM ({query}) q ORDER BY row LIMIT {MAX_LISTED}"), params
            )
            found.append(Problem(kind, int(count), [(int(r), str(v)) for r, v in listed]))
    return found


ANALYZE_PREDICTIONS = text("ANALYZE prediction")


async def store(
    session: AsyncSession, job_id: uuid.UUID, dataset_id: uuid.UUID, name: str | None
) -> PredictionSet:
    """A new set holding the staged rows (checked: each names one image of the job)."""
    new = PredictionSet(job_id=job_id, name=name, rows=0, errors=0)
    session.add(new)
    await session.flush()
    params = {"set_id": new.id, "job_id": job_id, "dataset_id": dataset_id}
    await session.execute(STORE, params)
    new.rows, new.errors = (await session.execute(COUNTS, {"set_id": new.id})).one()
    await session.flush()
    # Slices read the set right after it is stored; until autovacuum gets to it the planner
    # would take a bulk-filled table for nearly empty.
    await session.execute(ANALYZE_PREDICTIONS)
    return new


async def list_sets(session: AsyncSession, job_id: uuid.UUID) -> list[PredictionSet]:
    rows = await session.scalars(
        select(PredictionSet).where(PredictionSet.job_id == job_id).order_by(PredictionSet.id)
    )
    return list(rows)


def _latest_sets_query() -> Any:
    job = PredictionSet.job_id
    ranked = (
        select(
            PredictionSet,
            func.row_number()
            .over(partition_by=job, order_by=PredictionSet.id.desc())
            .label("rank"),
            func.count().over(partition_by=job).label("total"),
        )
        .where(PredictionSet.job_id.in_(bindparam("job_ids", expanding=True)))
        .subquery()
    )
    ranked_set = aliased(PredictionSet, ranked)
    return (
        select(ranked_set, ranked.c.total)
        .where(ranked.c.rank <= bindparam("per_job", type_=Integer))
        .order_by(ranked.c.job_id, ranked.c.id.desc())
    )


# Built once, its values bound at execution: the job view reads it on every poll, and
# building this windowed subquery costs the API more CPU than the database spends running it.
_LATEST_SETS = _latest_sets_query()


async def latest_sets(
    session: AsyncSession, job_ids: list[uuid.UUID], per_job: int
) -> dict[uuid.UUID, tuple[list[PredictionSet], int]]:
    """Per job, its newest per_job sets (newest first) and how many sets it has, for a whole
    page of jobs in one query. It reads the sets' stored counts, never the predictions, so a
    job view polled often costs an index lookup per job. Jobs without sets are absent."""
    if not job_ids:
        return {}
    rows = await session.execute(_LATEST_SETS, {"job_ids": job_ids, "per_job": per_job})
    found: dict[uuid.UUID, tuple[list[PredictionSet], int]] = {}
    for found_set, total in rows:
        found.setdefault(found_set.job_id, ([], int(total)))[0].append(found_set)
    return found


async def get_set(session: AsyncSession, job_id: uuid.UUID, set_id: int) -> PredictionSet | None:
    return await session.scalar(
        select(PredictionSet).where(PredictionSet.job_id == job_id, PredictionSet.id == set_id)
    )


async def count_sets(session: AsyncSession, job_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(PredictionSet).where(PredictionSet.job_id == job_id)
        )
        or 0
    )
