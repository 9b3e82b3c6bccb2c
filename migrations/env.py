"""Alembic environment: synchronous psycopg 3 on whatever database the caller names.

The URL comes from `config.attributes["url"]` (set by analysis_service.migrate), else
DATABASE_URL, else the embedded server under STATE_DIR.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from analysis_service.db import sqlalchemy_url
from analysis_service.embedded_db import resolve_database_url
from analysis_service.models import Base
from analysis_service.settings import AnalysisSettings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    return resolve_database_url(AnalysisSettings())


def _include(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    # procrastinate's tables are created from its own schema file, not from our models.
    return not (type_ == "table" and name and name.startswith("procrastinate_"))


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(_url()), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=_include,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
