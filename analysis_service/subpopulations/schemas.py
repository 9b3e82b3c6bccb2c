"""Wire models of discovered subpopulations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from analysis_service.schemas import Page


class Subpopulation(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int = Field(description="Use with /v1/subpopulations/{id}/images.")
    class_: str = Field(alias="class", description="The class (top-level folder).")
    dimension: str
    attribute: str
    is_other: bool = Field(description="True for the catch-all of images fitting no attribute.")
    size: int = Field(description="Images in this subpopulation.")
    share: float = Field(description="size / valid images of the class.")


class AttributeNode(BaseModel):
    id: int
    attribute: str
    is_other: bool
    size: int
    share: float


class DimensionNode(BaseModel):
    dimension: str
    attributes: list[AttributeNode]


class ClassNode(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class")
    images: int = Field(description="Valid, captioned images of the class.")
    dimensions: list[DimensionNode]


class Structure(BaseModel):
    job_id: str
    classes: list[ClassNode]


class SubpopulationImage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    image_id: int
    path: str = Field(description="Path relative to the dataset root.")
    class_: str = Field(alias="class")
    caption: str | None


class SubpopulationImagePage(Page[SubpopulationImage]):
    """A page of a subpopulation's images by image id: by offset, or after a cursor."""

    next: str | None = Field(
        description="Pass as `after` (with offset 0) for the next page; null on the last."
    )


class InvalidImageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    path: str = Field(description="Path relative to the dataset root.")
    class_: str | None = Field(alias="class")
    reason: str


class AssignmentRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    image: str = Field(description="Path relative to the dataset root, or the imported name.")
    class_: str | None = Field(alias="class", description="Class folder or imported label.")
    dimension: str
    attribute: str
    note: str | None = Field(default=None, description="Why 'other' was forced, if it was.")


class AssignmentPage(BaseModel):
    """A page of assignment rows: by offset (with the total), or after a cursor."""

    items: list[AssignmentRow]
    total: int = Field(description="Assignment rows of the job over all pages.")
    limit: int
    offset: int
    next: str | None = Field(
        description="Pass as `after` (with offset 0) for the next page; null on the last."
    )
