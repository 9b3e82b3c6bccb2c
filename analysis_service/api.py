"""`python -m analysis_service.api`: the analysis API alone, on HOST:ANALYSIS_PORT (what
`make serve` and compose run). With no API key configured it listens on loopback only: on
any other interface it refuses to start and says why."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import Field

from analysis_service.auth.exposure import open_mode_refusal
from analysis_service.embedded_db import resolve_database_url
from analysis_service.settings import AnalysisSettings
from shared.logging import configure_logging

logger = logging.getLogger("analysis_service.api")


class ApiServerSettings(AnalysisSettings):
    host: str = Field(default="127.0.0.1", description="Interface the services listen on.")
    analysis_port: int = Field(default=8000, description="Port of the analysis API.")


def main() -> int:
    settings = ApiServerSettings()
    configure_logging(settings.log_level, service="analysis")
    if problem := open_mode_refusal(settings, settings.host, resolve_database_url(settings)):
        logger.error("%s", problem)
        return 2
    uvicorn.run(
        "analysis_service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.analysis_port,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
