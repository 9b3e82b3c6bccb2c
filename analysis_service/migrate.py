"""Bring a database to the newest schema: `python -m analysis_service.migrate`."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from analysis_service.embedded_db import resolve_database_url
from analysis_service.settings import AnalysisSettings
from shared.logging import configure_logging

ROOT = Path(__file__).resolve().parent.parent
# The procrastinate version whose queue schema the migrations build (pyproject.toml pins it).
# Upgrading procrastinate means a revision applying its versioned SQL migrations (see README).
PROCRASTINATE_VERSION = "3.10.0"


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


SCHEMA_REVISION = text("SELECT version_num FROM alembic_version")
"""The migration revision the database is at."""


async def schema_revision(connection: AsyncConnection) -> str | None:
    return await connection.scalar(SCHEMA_REVISION)


def main() -> None:
    settings = AnalysisSettings()
    configure_logging(settings.log_level, service="migrate")
    upgrade(resolve_database_url(settings))
    logging.getLogger(__name__).info("database schema is up to date")


if __name__ == "__main__":
    main()
