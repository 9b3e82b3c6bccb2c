"""Wire models of jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analysis_service.jobs.lifecycle import JobStatus, Stage, StageState
from analysis_service.predictions.schemas import PredictionSetBrief
from analysis_service.reasoners.names import MAX_NAME_CHARS, NAME_PATTERN
from shared.json_types import NUMBER_NOT_TEXT, JsonBool
from shared.paths import PATH_MAX


class JobParameters(BaseModel):
    """What a job is asked to do beyond its inputs: given when it is submitted, stored with it,
    read back by every run."""

    mode: Literal["per_class", "organization"] = Field(
        default="per_class",
        description="per_class: each class gets its own dimensions. organization: all images "
        "pooled as one subject, organised by the criterion.",
    )
    criterion: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="The one dimension to build (e.g. 'location'); skips dimension discovery. "
        "A short label: letters, digits, spaces and - ' & / ( ) , . _",
        # Checked by name_problem when a job is submitted (a 422 naming the character);
        # published so that what the schema allows is what the API takes.
        json_schema_extra={"pattern": NAME_PATTERN},
    )
    num_attributes: Annotated[int, Field(ge=2, le=200), NUMBER_NOT_TEXT] | None = Field(
        default=None, description="Exact number of attributes (organization mode)."
    )
    subject: str | None = Field(
        default=None, max_length=200, description="How prompts name the images (organization)."
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1), NUMBER_NOT_TEXT] = Field(
        default=0, description="Seed of every sampling step."
    )
    token_budget: Annotated[int, Field(ge=1, le=2**63 - 1), NUMBER_NOT_TEXT] | None = Field(
        default=None, description="Stop cleanly once the job's LLM calls spent this many."
    )
    assignment_mode: Literal["batched", "per_image_dimension"] | None = Field(
        default=None, description="Override ASSIGNMENT_MODE for this job."
    )
    saturation_rounds: Annotated[int, Field(ge=0, le=1000), NUMBER_NOT_TEXT] | None = Field(
        default=None,
        description="Override SATURATION_ROUNDS for this job: a round loop of discovery "
        "stops once this many consecutive rounds changed nothing it would select; 0 runs "
        "every round.",
    )
    caption_class_hint: JsonBool = Field(
        default=False,
        description="Put the class name into the captioning prompt, as the SSD-LLM reference "
        "code did. For reproducing its benchmarks: it biases captions toward the label.",
    )

    @property
    def pooled(self) -> bool:
        """Organization mode: all images are one subject, organised by the criterion."""
        return self.mode == "organization"

    @model_validator(mode="after")
    def _num_attributes_pooled(self) -> JobParameters:
        if self.num_attributes is not None and not self.pooled:
            raise ValueError("num_attributes is for mode 'organization'")
        return self


def _string(name: str) -> dict[str, Any]:
    """JSON Schema: the property is present and a string (not null)."""
    return {"required": [name], "properties": {name: {"type": "string"}}}


class JobCreate(JobParameters):
    # The rules of the validators below, in the published schema too, so that a request the
    # schema allows is one the API takes (clients and fuzzers generate from the schema).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {"anyOf": [_string("dataset_path"), _string("captions_path")]},
                {
                    "anyOf": [
                        {"properties": {"num_attributes": {"type": "null"}}},
                        {"required": ["mode"], "properties": {"mode": {"const": "organization"}}},
                    ]
                },
            ]
        },
    )

    dataset_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=PATH_MAX,
        description="Folder with one subfolder per class; absolute, or relative to a data root.",
        examples=["/data/waterbirds"],
    )
    captions_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=PATH_MAX,
        description="CSV or JSONL of captions (image, label, caption) inside DATA_ROOTS: "
        "discovery without captioning. With dataset_path, rows are matched to its images.",
    )

    @model_validator(mode="after")
    def _some_input(self) -> JobCreate:
        if self.dataset_path is None and self.captions_path is None:
            raise ValueError("give dataset_path, captions_path, or both")
        return self


class JobOptions(JobParameters):
    """A job's parameters as stored on its row (job.options), with its inputs resolved."""

    dataset_path: str | None = Field(default=None, description="The dataset folder, resolved.")
    captions_path: str | None = Field(default=None, description="The captions file, resolved.")

    @property
    def has_folder(self) -> bool:
        """Whether the job has images on disk to scan (a captions file alone has none)."""
        return self.dataset_path is not None or self.captions_path is None


class LLMSpent(BaseModel):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = 0


class LLMUsage(BaseModel):
    model: str | None = Field(default=None, description="The LLM, when one is configured.")
    estimate: dict[str, int] | None = Field(
        default=None, description="calls and tokens expected, and those of the fixed steps."
    )
    spent: LLMSpent = Field(default_factory=LLMSpent, description="What calls cost so far.")
    budget: int | None = None


class StageProgress(BaseModel):
    state: StageState | None = None
    done: int = 0
    total: int | None = None
    unit: str = Field(default="images", description="What done and total count.")
    started_at: datetime | None = None
    finished_at: datetime | None = None


# How many prediction sets a job's view lists (the newest): enough to pick one, bounded so that
# a job with many sets still answers a poll quickly.
LATEST_SETS = 20


class JobLinks(BaseModel):
    """Where a succeeded job's results are read and acted on (paths on this API)."""

    structure: str = Field(description="The discovered tree: class, dimension, attributes.")
    predictions: str = Field(
        description="POST a model's predictions here (GET lists them); slices need one."
    )
    groups: str = Field(
        description="Group labels for robust training: a URI template; fill in `{dimension}` "
        "with a dimension of the structure."
    )
    export: str = Field(
        description="One row per image as Parquet; `format=csv` or `format=jsonl` for others."
    )
    tail: str = Field(description="Rare subpopulations with prompts for generating more.")


class JobPredictions(BaseModel):
    """The job's prediction sets as its view shows them: the newest few and how many."""

    total: int = Field(description="Sets the job has; `links.predictions` lists them all.")
    latest: list[PredictionSetBrief] = Field(
        description=f"The newest sets, newest first, at most {LATEST_SETS}."
    )


class Job(BaseModel):
    id: uuid.UUID
    status: JobStatus
    cancel_requested: bool = Field(
        description="A cancel was asked for while the job ran; it stops at its next batch."
    )
    stage: Stage | None = Field(description="Stage running now, or the last one reached.")
    dataset_path: str = Field(description="The dataset folder, resolved.")
    progress: dict[str, StageProgress] = Field(
        description="Per stage (scan, import or caption, discover, summarize): done and total."
    )
    images: int = Field(description="Files found in the dataset.")
    valid: int = Field(description="Images analysed.")
    invalid: int = Field(description="Files skipped; see /invalid-images for reasons.")
    seed: int
    caption_engine: str | None = Field(default=None, description="engine/model that captioned.")
    reasoner: str | None = Field(default=None, description="What proposed and assigned.")
    error: str | None = Field(default=None, description="Why the job failed.")
    submitted_by: str | None = Field(
        default=None, description="Name of the API key that submitted it; null when open."
    )
    mode: str = "per_class"
    criterion: str | None = None
    captions_path: str | None = None
    llm: LLMUsage = Field(description="LLM calls and tokens estimated and spent.")
    attempts: int = Field(description="How many times a worker started this job.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None = Field(description="From start to finish (or to now).")
    links: JobLinks | None = Field(
        default=None, description="What to do next with the results; null until it succeeded."
    )
    predictions: JobPredictions | None = Field(
        default=None, description="Its prediction sets; null until it succeeded."
    )


class JobAccepted(BaseModel):
    id: uuid.UUID
    status: JobStatus
    dataset_path: str


class JobEventOut(BaseModel):
    at: datetime
    kind: str = Field(description="started, interrupted, succeeded, failed or cancelled.")
    stage: Stage | None = None
    message: str | None = None
