"""Rows written with plain SQL on a test's database (the `db` fixture: psycopg in autocommit),
for tests of what the schema itself ensures, apart from the code that writes them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

JOB = (
    "INSERT INTO job (id, dataset_id, status, options, progress, images, valid, invalid,"
    " cancel_requested, attempts) VALUES (gen_random_uuid(), %s, 'succeeded', '{}', '{}',"
    " 0, 0, 0, false, 1) RETURNING id"
)
IMAGE = (
    "INSERT INTO image (dataset_id, relpath, class_name, size_bytes, mtime_ns)"
    " VALUES (%s, %s, 'cat', 1, 1) RETURNING id"
)


def one_value(db: psycopg.Connection, query: str, *params: object) -> Any:
    """The first column of the query's one row."""
    row = db.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def new_dataset(db: psycopg.Connection) -> uuid.UUID:
    """A dataset of a folder of its own."""
    query = "INSERT INTO dataset (id, root_path) VALUES (gen_random_uuid(), %s) RETURNING id"
    return one_value(db, query, f"/d/{uuid.uuid4()}")
