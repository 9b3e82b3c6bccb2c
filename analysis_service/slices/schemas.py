"""Wire models of slices."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Condition(BaseModel):
    dimension: str
    attribute: str


class Slice(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", description="The true class of the slice's images.")
    conditions: list[Condition] = Field(description="One attribute, or two of two dimensions.")
    size: int = Field(description="Images in the slice that have a prediction.")
    errors: int = Field(description="Of them, predicted wrong.")
    error_rate: float
    ci_low: float = Field(description="Wilson 95% interval of the error rate, low end.")
    ci_high: float = Field(description="Wilson 95% interval of the error rate, high end.")
    baseline_error_rate: float = Field(description="Error rate of the rest of the class.")
    gap: float = Field(description="error_rate - baseline_error_rate.")
    p_value: float = Field(
        description="One-sided Fisher exact test that the slice errs more than the rest."
    )
    q_value: float = Field(description="Benjamini-Hochberg, over every slice tested.")
    significant: bool = Field(description="q_value <= alpha.")
    description: str
    images_url: str = Field(description="The slice's images with their predictions.")


class SliceReport(BaseModel):
    predictions: int = Field(description="The prediction set.")
    alpha: float
    min_size: int
    tested: int = Field(description="Slices tested (the q-values account for all of them).")
    significant: int = Field(description="Slices with q <= alpha.")
    items: list[Slice] = Field(description="Significant first by gap, then the rest by p.")


class SliceImage(BaseModel):
    image_id: int
    image: str = Field(description="The image's path as /assignments shows it.")
    label: str = Field(description="The true class.")
    prediction: str
    correct: bool
    confidence: float | None
    split: str | None


class SliceImagePage(BaseModel):
    items: list[SliceImage]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
