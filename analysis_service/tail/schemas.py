"""Wire models of rare subpopulations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TailAttribute(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    attribute_id: int = Field(description="The subpopulation's id (/v1/subpopulations/{id}).")
    class_: str = Field(alias="class")
    dimension: str
    attribute: str
    size: int = Field(description="Images of the class with this attribute.")
    share: float = Field(description="size / images of the class.")
    template_prompt: str = Field(
        description='For a text-to-image model: "a photo of a <class>, <dimension>: <attribute>".'
    )
    llm_prompt: str | None = Field(description="Written by the LLM (POST /tail); null until then.")
    llm_model: str | None = Field(description="The LLM that wrote llm_prompt.")


class TailPage(BaseModel):
    max_share: float
    items: list[TailAttribute] = Field(description="Rarest first.")
    total: int = Field(description="Attributes below max_share, over all pages.")
    limit: int
    offset: int


class TailFailure(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    attribute_id: int
    class_: str = Field(alias="class")
    dimension: str
    attribute: str
    problem: str = Field(description="Why the LLM's answers were not kept.")


class TailPromptsWritten(BaseModel):
    max_share: float
    model: str = Field(description="The LLM asked.")
    written: list[TailAttribute] = Field(description="The attributes given a prompt now.")
    failed: list[TailFailure] = Field(description="Asked, without a valid answer.")
    remaining: int = Field(
        description="Attributes below max_share still without a prompt: POST again for them."
    )
