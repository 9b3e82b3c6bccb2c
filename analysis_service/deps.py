"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from analysis_service.settings import AnalysisSettings


def get_settings(request: Request) -> AnalysisSettings:
    return request.app.state.settings


Settings = Annotated[AnalysisSettings, Depends(get_settings)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]
