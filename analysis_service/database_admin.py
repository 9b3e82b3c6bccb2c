"""Whole databases on a Postgres server (the embedded one, a test or benchmark server):
creating, copying and dropping them. These statements take no bind parameters, so database
names are quoted as identifiers by psycopg, never spliced into SQL text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from analysis_service.db import with_database


def _run(admin_url: str, statement: sql.SQL | sql.Composed, params: tuple = ()) -> list[tuple]:
    # CREATE and DROP DATABASE cannot run inside a transaction.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """A new database (a copy of template, when given); its URL."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    _run(admin_url, statement)
    return with_database(admin_url, name)


def ensure_database(admin_url: str, name: str) -> str:
    """The database, created when missing; its URL."""
    found = _run(admin_url, sql.SQL("SELECT 1 FROM pg_database WHERE datname = %s"), (name,))
    if not found:
        return create_database(admin_url, name)
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop it if it exists, closing its connections."""
    _run(admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def scratch_database(admin_url: str, name: str, template: str | None = None) -> Iterator[str]:
    """A database for the duration of a block (its URL), dropped afterwards."""
    drop_database(admin_url, name)
    try:
        yield create_database(admin_url, name, template)
    finally:
        drop_database(admin_url, name)
