"""An assignment's references, two checks per row (migration 0015) where there were four:
what the four ensured still holds, and an assignment's attribute must now be of its
dimension."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.sql import IMAGE, JOB, new_dataset, one_value

ASSIGN = (
    "INSERT INTO assignment (job_id, image_id, dimension_id, attribute_id) VALUES (%s, %s, %s, %s)"
)


def _job(db: psycopg.Connection) -> dict[str, object]:
    """A job with one linked image and two dimensions of two attributes each."""
    ds = new_dataset(db)
    job, image = one_value(db, JOB, ds), one_value(db, IMAGE, ds, "cat/1.jpg")
    db.execute("INSERT INTO job_image (job_id, image_id) VALUES (%s, %s)", (job, image))
    dims, attrs = {}, {}
    for d, name in enumerate(("background", "pose")):
        dims[name] = one_value(
            db,
            "INSERT INTO dimension (job_id, class_name, name, position)"
            " VALUES (%s, 'cat', %s, %s) RETURNING id",
            job,
            name,
            d,
        )
        for a, value in enumerate((f"{name}-a", "other")):
            attrs[(name, value)] = one_value(
                db,
                "INSERT INTO attribute (dimension_id, job_id, name, position, is_other, size,"
                " share) VALUES (%s, %s, %s, %s, %s, 0, 0) RETURNING id",
                dims[name],
                job,
                value,
                a,
                value == "other",
            )
    return {"dataset": ds, "job": job, "image": image, "dims": dims, "attrs": attrs}


def _assignments(db: psycopg.Connection, job: uuid.UUID) -> int:
    return int(one_value(db, "SELECT count(*) FROM assignment WHERE job_id = %s", job))


def test_an_assignment_must_reference_an_attribute_of_its_dimension(db):
    made = _job(db)
    job, image, dims, attrs = made["job"], made["image"], made["dims"], made["attrs"]
    db.execute(ASSIGN, (job, image, dims["background"], attrs[("background", "background-a")]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(ASSIGN, (job, image, dims["pose"], attrs[("background", "other")]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(ASSIGN, (job, image, dims["pose"], max(attrs.values()) + 1))


def test_an_assignment_must_reference_an_image_its_job_saw(db):
    made, other = _job(db), _job(db)
    pose = made["dims"]["pose"]
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(ASSIGN, (made["job"], other["image"], pose, made["attrs"][("pose", "other")]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(ASSIGN, (uuid.uuid4(), made["image"], pose, made["attrs"][("pose", "other")]))


@pytest.mark.parametrize(
    "delete",
    [
        "DELETE FROM job WHERE id = %(job)s",
        "DELETE FROM job_image WHERE job_id = %(job)s",
        "DELETE FROM image WHERE id = %(image)s",
        "DELETE FROM dimension WHERE id = %(pose)s",
        "DELETE FROM attribute WHERE id = %(pose_a)s",
    ],
)
def test_what_an_assignment_references_takes_it_along_when_deleted(db, delete):
    made, kept = _job(db), _job(db)
    for job in (made, kept):
        for dim in ("background", "pose"):
            args = (job["job"], job["image"], job["dims"][dim], job["attrs"][(dim, f"{dim}-a")])
            db.execute(ASSIGN, args)
    params = {
        "job": made["job"],
        "image": made["image"],
        "pose": made["dims"]["pose"],
        "pose_a": made["attrs"][("pose", "pose-a")],
    }
    db.execute(delete, params)
    left = _assignments(db, made["job"])
    assert left == (1 if "dimension" in delete or "attribute" in delete else 0)
    assert _assignments(db, kept["job"]) == 2
