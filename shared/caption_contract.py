"""The wire contract between the analysis side and the caption service."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


class CaptionImage(BaseModel):
    id: str = Field(min_length=1, max_length=200, description="Caller's id, echoed back.")
    path: str | None = Field(
        default=None, description="Path of the image file; must lie inside DATA_ROOTS."
    )
    data: str | None = Field(default=None, description="Base64-encoded image bytes.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CaptionImage:
        if (self.path is None) == (self.data is None):
            raise ValueError("give exactly one of 'path' or 'data'")
        return self


class CaptionRequest(BaseModel):
    images: list[CaptionImage] = Field(min_length=1, description="Images to caption, in order.")


class CaptionResult(BaseModel):
    id: str
    caption: str | None = Field(default=None, description="The caption; null when error is set.")
    error: str | None = Field(default=None, description="Why this image got no caption.")
    prompt_tokens: int | None = None
    output_tokens: int | None = None


class EngineInfo(BaseModel):
    """What identifies a caption: equal info means an equal caption for equal bytes."""

    engine: str
    model: str
    prompt_version: str
    prompt: str
    params: dict[str, Any] = Field(default_factory=dict)


class CaptionResponse(BaseModel):
    engine: EngineInfo
    results: list[CaptionResult]
