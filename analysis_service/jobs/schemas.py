"""Wire models of jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_path: str = Field(
        min_length=1,
        max_length=4096,
        description="Folder with one subfolder per class; absolute, or relative to a data root.",
        examples=["/data/waterbirds"],
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of every sampling step.")
    caption_class_hint: bool = Field(
        default=False,
        description="Put the class name into the captioning prompt, as the SSD-LLM reference "
        "code did. For reproducing its benchmarks: it biases captions toward the label.",
    )


class StageProgress(BaseModel):
    state: str | None = Field(default=None, description="running or done.")
    done: int = 0
    total: int | None = None
    unit: str = Field(default="images", description="What done and total count.")
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Job(BaseModel):
    id: uuid.UUID
    status: JobStatus
    stage: str | None = Field(description="Stage running now, or the last one reached.")
    dataset_path: str = Field(description="The dataset folder, resolved.")
    progress: dict[str, StageProgress] = Field(
        description="Per stage (scan, caption, discover, summarize): done and total."
    )
    images: int = Field(description="Files found in the dataset.")
    valid: int = Field(description="Images analysed.")
    invalid: int = Field(description="Files skipped; see /invalid-images for reasons.")
    seed: int
    caption_engine: str | None = Field(default=None, description="engine/model that captioned.")
    reasoner: str | None = Field(default=None, description="What proposed and assigned.")
    error: str | None = Field(default=None, description="Why the job failed.")
    attempts: int = Field(description="How many times a worker started this job.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None = Field(description="From start to finish (or to now).")


class JobAccepted(BaseModel):
    id: uuid.UUID
    status: JobStatus
    dataset_path: str
