"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from analysis_service.reasoners.names import MAX_NAME_CHARS
from analysis_service.settings import AnalysisSettings
from shared.paths import NAME_MAX


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
# A job id is a UUID (36 characters; other spellings of one are a little longer): anything
# longer is a 422 naming the parameter, before it reaches a log line or the database.
JobId = Annotated[str, Path(max_length=64, description="The job's id (a UUID).")]
ClassName = Annotated[
    str | None,
    Query(alias="class", max_length=NAME_MAX, description="Only this class (a folder name)."),
]
DimensionName = Annotated[
    str | None, Query(max_length=MAX_NAME_CHARS, description="Only this dimension.")
]
