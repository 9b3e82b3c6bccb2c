"""Wire models of prediction sets."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from analysis_service.predictions.reader import (
    MAX_CLASS_CHARS,
    MAX_IMAGE_CHARS,
    MAX_SPLIT_CHARS,
)
from analysis_service.reasoners.names import MAX_NAME_CHARS

MAX_INLINE_ROWS = 100_000
PATH_CHARS = 4096


def accuracy(rows: int, errors: int) -> float:
    """Share of a set's rows predicted right (0 for a set without rows)."""
    return (rows - errors) / rows if rows else 0.0


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        max_length=MAX_IMAGE_CHARS, description="The image's path as /assignments shows it."
    )
    prediction: str = Field(max_length=MAX_CLASS_CHARS, description="The predicted class.")
    label: str | None = Field(
        default=None,
        max_length=MAX_CLASS_CHARS,
        description="The true class; default: the image's class in the job.",
    )
    confidence: float | None = Field(default=None, ge=0, le=1)
    split: str | None = Field(
        default=None, max_length=MAX_SPLIT_CHARS, description="e.g. train, val, test."
    )


class PredictionsCreate(BaseModel):
    """Exactly one of predictions_path and predictions."""

    model_config = ConfigDict(extra="forbid")

    predictions_path: str | None = Field(
        default=None,
        max_length=PATH_CHARS,
        description="A CSV or JSONL file inside DATA_ROOTS (JSONL: .jsonl or .ndjson).",
    )
    predictions: list[PredictionIn] | None = Field(
        default=None, max_length=MAX_INLINE_ROWS, description="The rows inline, for small sets."
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="A name unique in the job, e.g. resnet50-epoch90.",
    )


class PredictionSetOut(BaseModel):
    id: int = Field(description="Use as `predictions` in /slices, /groups and /export.")
    name: str | None
    rows: int = Field(description="Rows read.")
    matched: int = Field(description="Images of the job that the rows were matched to.")
    errors: int = Field(description="Rows whose prediction is not the true class.")
    accuracy: float = Field(description="Share of rows predicted right.")
    created_at: datetime


class PredictionSetBrief(BaseModel):
    """A prediction set as a job's view names it, with where to look at its errors."""

    id: int = Field(description="Use as `predictions` in /slices, /groups and /export.")
    name: str | None
    rows: int = Field(description="Rows read.")
    accuracy: float = Field(description="Share of rows predicted right.")
    slices_url: str = Field(description="Where this set's model errs most (GET).")
