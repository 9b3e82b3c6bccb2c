"""Wire models of group labels."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GroupRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    image_id: int
    filename: str = Field(description="The image's path as /assignments shows it.")
    split: str | None = Field(description="From the named prediction set, when it gave one.")
    y: int = Field(description="Index of the class in `classes`.")
    a: int = Field(description="Index of the attribute in `attributes`.")
    group: int = Field(description="y * len(attributes) + a.")
    class_: str = Field(alias="class")
    attribute: str


class GroupPage(BaseModel):
    dimension: str
    classes: list[str] = Field(description="The classes asked, by name: y indexes them.")
    attributes: list[str] = Field(
        description="The dimension's attributes over those classes: a indexes them."
    )
    n_groups: int = Field(description="len(classes) * len(attributes).")
    items: list[GroupRow]
    next_after: int | None = Field(description="Pass as `after` for the next page.")
