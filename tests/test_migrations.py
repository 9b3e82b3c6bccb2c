"""The migrations build exactly the models' schema, and go down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from analysis_service.db import sqlalchemy_url
from analysis_service.migrate import alembic_config, upgrade
from analysis_service.models import Base


def _diff(url: str) -> list:
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, *_: (
                    not (type_ == "table" and name.startswith("procrastinate_"))
                ),
            },
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return diff


def test_migrations_match_models(database_url):
    assert _diff(database_url) == []


def test_queue_tables_exist(database_url):
    engine = create_engine(sqlalchemy_url(database_url))
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"procrastinate_jobs", "procrastinate_workers", "job", "assignment"} <= tables


def test_downgrade_then_upgrade(database_url):
    command.downgrade(alembic_config(database_url), "base")
    engine = create_engine(sqlalchemy_url(database_url))
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(database_url)
    assert _diff(database_url) == []
