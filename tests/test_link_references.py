"""job_image's references to job and image, checked once per statement by triggers (migration
0013) instead of a foreign key check per row: what the foreign keys ensured still holds, for
any statement and against concurrent deletions."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from analysis_service.db import libpq_url
from tests.sql import IMAGE, JOB, new_dataset, one_value

LINK = "INSERT INTO job_image (job_id, image_id) VALUES (%s, %s)"


def _links(db: psycopg.Connection) -> list[tuple[uuid.UUID, int]]:
    return db.execute("SELECT job_id, image_id FROM job_image ORDER BY image_id").fetchall()


def test_a_statement_linking_a_missing_job_or_image_fails_whole(db: psycopg.Connection):
    ds = new_dataset(db)
    job = one_value(db, JOB, ds)
    images = [one_value(db, IMAGE, ds, f"cat/{i}.jpg") for i in range(3)]
    many = "INSERT INTO job_image (job_id, image_id) SELECT %s, unnest(%s::bigint[])"
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(many, (job, [*images, max(images) + 1]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(LINK, (uuid.uuid4(), images[0]))
    assert _links(db) == []
    db.execute(many, (job, images))
    assert _links(db) == [(job, i) for i in images]


def test_deleting_a_job_or_an_image_deletes_its_links(db: psycopg.Connection):
    ds = new_dataset(db)
    kept, gone = one_value(db, JOB, ds), one_value(db, JOB, ds)
    first, second = (one_value(db, IMAGE, ds, f"cat/{i}.jpg") for i in range(2))
    for job in (kept, gone):
        for image in (first, second):
            db.execute(LINK, (job, image))
    db.execute("DELETE FROM job WHERE id = %s", (gone,))
    assert _links(db) == [(kept, first), (kept, second)]
    db.execute("DELETE FROM image WHERE id = %s", (first,))
    assert _links(db) == [(kept, second)]


def test_the_keys_links_hold_or_reference_never_change(db: psycopg.Connection):
    ds = new_dataset(db)
    job, image = one_value(db, JOB, ds), one_value(db, IMAGE, ds, "cat/a.jpg")
    other = one_value(db, IMAGE, ds, "cat/b.jpg")
    db.execute(LINK, (job, image))
    for statement, params in (
        ("UPDATE job SET id = gen_random_uuid() WHERE id = %s", (job,)),
        ("UPDATE image SET id = id + 1000 WHERE id = %s", (image,)),
        ("UPDATE job_image SET image_id = %s WHERE job_id = %s", (other, job)),
    ):
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="never changes"):
            db.execute(statement, params)
    db.execute("UPDATE job_image SET caption_error = 'x' WHERE job_id = %s", (job,))
    assert _links(db) == [(job, image)]


def _until_waiting(db: psycopg.Connection, pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if one_value(
            db, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", pid
        ):
            return
        time.sleep(0.02)
    raise AssertionError("the statement never waited for a lock")


def test_a_link_to_an_image_being_deleted_waits_and_then_fails(
    database_url: str, db: psycopg.Connection
):
    """As a foreign key check: the link waits for the deleting transaction, and fails once
    the deletion is committed."""
    ds = new_dataset(db)
    job, image = one_value(db, JOB, ds), one_value(db, IMAGE, ds, "cat/a.jpg")
    with psycopg.connect(libpq_url(database_url)) as deleting:
        deleting.execute("DELETE FROM image WHERE id = %s", (image,))
        with psycopg.connect(libpq_url(database_url), autocommit=True) as linking:
            failed: list[BaseException] = []

            def link() -> None:
                try:
                    linking.execute(LINK, (job, image))
                except psycopg.Error as exc:
                    failed.append(exc)

            thread = threading.Thread(target=link)
            thread.start()
            _until_waiting(db, linking.info.backend_pid)
            deleting.commit()
            thread.join(30)
    assert len(failed) == 1 and isinstance(failed[0], psycopg.errors.ForeignKeyViolation)
    assert _links(db) == []


def test_deleting_an_image_a_transaction_is_linking_waits_and_deletes_the_link(
    database_url: str, db: psycopg.Connection
):
    """The link locks what it references until its transaction ends: the deletion waits,
    then deletes the link with the image."""
    ds = new_dataset(db)
    job, image = one_value(db, JOB, ds), one_value(db, IMAGE, ds, "cat/a.jpg")
    with psycopg.connect(libpq_url(database_url)) as linking:
        linking.execute(LINK, (job, image))
        with psycopg.connect(libpq_url(database_url), autocommit=True) as deleting:
            thread = threading.Thread(
                target=deleting.execute, args=("DELETE FROM image WHERE id = %s", (image,))
            )
            thread.start()
            _until_waiting(db, deleting.info.backend_pid)
            linking.commit()
            thread.join(30)
    assert one_value(db, "SELECT count(*) FROM image") == 0
    assert _links(db) == []


def test_links_carry_no_per_row_foreign_key_check(db: psycopg.Connection):
    """A re-scan links every file of the folder: a check per row and key was half of it."""
    foreign_keys = "SELECT count(*) FROM pg_constraint WHERE conrelid = 'job_image'::regclass"
    assert one_value(db, foreign_keys + " AND contype = 'f'") == 0
