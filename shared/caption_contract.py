"""The wire contract between the analysis side and the caption service."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.hashing import canonical_sha256
from shared.json_types import JsonBool
from shared.paths import NAME_MAX, PATH_MAX


def _string(name: str) -> dict[str, Any]:
    """JSON Schema: the property is present and a string (not null)."""
    return {"required": [name], "properties": {name: {"type": "string"}}}


class CaptionImage(BaseModel):
    # The validators' rules are in the published schema too: what the schema allows is taken.
    # Unknown fields are refused (422), not ignored: a misspelt option would otherwise be a
    # caption made without it.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [_string("path"), _string("data")]}
    )

    id: str = Field(min_length=1, max_length=200, description="Caller's id, echoed back.")
    path: str | None = Field(
        default=None,
        max_length=PATH_MAX,
        # Absolute: a relative one would be looked up from wherever the service was started.
        pattern="^/",
        description="Absolute path of the image file; must lie inside DATA_ROOTS.",
    )
    data: str | None = Field(default=None, description="Base64-encoded image bytes.")
    class_name: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        description="The image's class (a folder name), for class_hint prompts.",
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CaptionImage:
        if (self.path is None) == (self.data is None):
            raise ValueError("give exactly one of 'path' or 'data'")
        return self


class CaptionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"class_hint": {"const": False}}},
                {
                    "properties": {
                        "images": {
                            "items": {
                                "required": ["class_name"],
                                "properties": {"class_name": {"type": "string", "minLength": 1}},
                            }
                        }
                    }
                },
            ]
        },
    )

    images: list[CaptionImage] = Field(min_length=1, description="Images to caption, in order.")
    class_hint: JsonBool = Field(
        default=False,
        description="Put each image's class_name into the prompt, as the SSD-LLM reference "
        "code did (for benchmark reproduction; it biases captions toward the label).",
    )

    @model_validator(mode="after")
    def _class_names_for_hint(self) -> CaptionRequest:
        if self.class_hint and any(not im.class_name for im in self.images):
            raise ValueError("class_hint needs a class_name on every image")
        return self


class CaptionResult(BaseModel):
    id: str
    caption: str | None = Field(default=None, description="The caption; null when error is set.")
    error: str | None = Field(default=None, description="Why this image got no caption.")
    prompt_tokens: int | None = Field(default=None, description="Prompt tokens, image included.")
    output_tokens: int | None = Field(default=None, description="Tokens of the caption.")
    finish_reason: str | None = Field(default=None, description="stop, or length if cut short.")
    sha256: str | None = Field(
        default=None,
        description="SHA-256 (hex) of the image bytes that were captioned; set with every "
        "caption, so that the caller can tell whether they are the bytes it meant.",
    )


class EngineInfo(BaseModel):
    """What identifies a caption: equal info means an equal caption for equal bytes."""

    engine: str
    model: str
    prompt_version: str
    prompt: str
    params: dict[str, Any] = Field(default_factory=dict)

    def caption_key(self) -> str:
        """The key captions are stored under: a hash of this whole description."""
        return canonical_sha256(self.model_dump(mode="json"))


class CaptionResponse(BaseModel):
    engine: EngineInfo
    results: list[CaptionResult]
