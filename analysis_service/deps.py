"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from analysis_service.settings import AnalysisSettings


def get_settings(request: Request) -> AnalysisSettings:
    return request.app.state.settings


Settings = Annotated[AnalysisSettings, Depends(get_settings)]
# Postgres counts rows and ids in 64-bit integers; larger numbers in a URL are a 422, not an
# overflow inside the database.
MAX_OFFSET = 2**31 - 1
MAX_ID = 2**63 - 1

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="A numeric id.")]
