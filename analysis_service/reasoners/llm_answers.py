"""Every answer the LLM reasoner expects, each one pydantic model: the JSON Schema sent as
`response_format` is generated from it (`shared.openai_chat.strict_schema`), and the same model
validates what comes back. Answers whose allowed values depend on the request (dimension
names, attribute lists) are built per request by the functions below, on top of a fixed base
class that gives the fields their types.

Rules a JSON Schema in strict mode cannot carry (non-empty names, word counts, two different
values to merge) are validators here; they never show in the schema.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    conlist,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from analysis_service.reasoners.base import OTHER

T = TypeVar("T", bound=BaseModel)


class LLMAnswer(BaseModel):
    """An answer object: no other keys (additionalProperties false), every key required."""

    model_config = ConfigDict(extra="forbid")
    #: The response_format's json_schema name.
    schema_name: ClassVar[str]


def problem_of(error: ValidationError) -> str:
    """The validation errors as one line, for the corrective request and the call log."""
    return "; ".join(
        f"'{'.'.join(map(str, e['loc']))}' {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors(include_url=False)
    )


def _enum(options: list[str]) -> WithJsonSchema:
    """The schema of a string restricted to `options` (schema only: see _one_of)."""
    return WithJsonSchema({"type": "string", "enum": options})


def _one_of(options: list[str]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in options:
            raise PydanticCustomError(
                "not_allowed", "must be one of {options}", {"options": options}
            )
        return value

    return AfterValidator(check)


#: Characters a name may use per word it may have: dimension and attribute names are short
#: labels, and a model's answer is untrusted text (it may echo a caption's instructions).
CHARS_PER_WORD = 24


def _at_most_words(most: int, required: bool = True) -> Callable[[str], str]:
    """The check: at most `most` words and CHARS_PER_WORD characters a word (and not blank,
    when required)."""

    def check(value: str) -> str:
        if required and not value.strip():
            raise PydanticCustomError("blank", "must be a non-empty string")
        if len(value.split()) > most:
            raise PydanticCustomError("too_long", "must be at most {most} words", {"most": most})
        if len(value) > most * CHARS_PER_WORD:
            limit = most * CHARS_PER_WORD
            raise PydanticCustomError(
                "too_long", "must be at most {limit} characters", {"limit": limit}
            )
        return value

    return check


def _words(most: int, required: bool = True) -> AfterValidator:
    """A string field of at most `most` words (and not blank, when required)."""
    return AfterValidator(_at_most_words(most, required))


def _allowed(options: list[str]) -> Any:
    """A string that must be one of `options`, in the schema and in validation."""
    return Annotated[str, _enum(options), _one_of(options)]


def _phrase(most: int, required: bool = True) -> Any:
    return Annotated[str, _words(most, required)]


def _per_dimension(name: str, value_of: Mapping[str, Any]) -> Any:
    """An object with one required property per dimension (its name as the key), read back as
    a plain dict. Field names are positional, because a dimension may be called anything,
    including the name of a BaseModel attribute."""
    fields: dict[str, Any] = {
        f"d{i}": (value, Field(alias=dim)) for i, (dim, value) in enumerate(value_of.items())
    }
    model = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    as_dict: Callable[[BaseModel], dict[str, Any]] = lambda m: m.model_dump(by_alias=True)  # noqa: E731
    return Annotated[model, AfterValidator(as_dict), PlainSerializer(dict)]


def _answer(base: type[T], **fields: Any) -> type[T]:
    """`base` with the request's own types for some of its fields."""
    specs: dict[str, Any] = {key: (value, ...) for key, value in fields.items()}
    return create_model(base.__name__, __base__=base, **specs)


class Dimensions(LLMAnswer):
    schema_name = "dimensions"
    dimensions: list[str]


def dimensions(most: int, allowed: list[str] | None = None) -> type[Dimensions]:
    """One to `most` dimension names of at most two words, from `allowed` when given."""
    if allowed is None:
        name = _phrase(2)
    else:
        name = Annotated[str, _enum(allowed), _one_of(allowed), _words(2)]
    return _answer(Dimensions, dimensions=conlist(name, min_length=1, max_length=most))


class AttributeNames(LLMAnswer):
    schema_name = "attributes"
    attributes: list[str]


def attribute_names(least: int, most: int) -> type[AttributeNames]:
    """`least` to `most` attribute names of at most three words."""
    names = conlist(_phrase(3), min_length=least, max_length=most)
    return _answer(AttributeNames, attributes=names)


class AttributesByDimension(LLMAnswer):
    schema_name = "attributes"
    attributes: dict[str, list[str]]


def attributes_by_dimension(dims: list[str], most: int) -> type[AttributesByDimension]:
    """For every dimension, up to `most` short phrases (blank ones are dropped by the caller)."""
    values = conlist(_phrase(4, required=False), max_length=most)
    per_dim = _per_dimension("AttributesOfEachDimension", dict.fromkeys(dims, values))
    return _answer(AttributesByDimension, attributes=per_dim)


class Choices(LLMAnswer):
    schema_name = "choices"
    choices: dict[str, str]


def choices(dims: Mapping[str, list[str]]) -> type[Choices]:
    """One value per dimension, from its attributes or OTHER."""
    allowed = {d: _allowed([*a, OTHER]) for d, a in dims.items()}
    return _answer(Choices, choices=_per_dimension("ChoiceOfEachDimension", allowed))


class Choice(LLMAnswer):
    schema_name = "choice"
    attribute: str


def choice(attributes: list[str]) -> type[Choice]:
    """One of the attributes, or OTHER."""
    return _answer(Choice, attribute=_allowed([*attributes, OTHER]))


class Diagnosis(LLMAnswer):
    schema_name = "diagnosis"
    verdict: Literal["hallucination", "hard_case", "redundant", "missing"]
    merge: list[str] | None
    merged_name: str | None
    new_attribute: str | None

    @field_validator("new_attribute")
    @classmethod
    def _new_attribute_when_missing(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked only for the verdict that uses it: the others may leave anything there.
        if info.data.get("verdict") == "missing":
            _at_most_words(3)(value or "")
        return value

    @model_validator(mode="after")
    def _redundant_names_two_values(self) -> Diagnosis:
        if self.verdict == "redundant":
            merge = self.merge or []
            if len(merge) != 2 or merge[0] == merge[1]:
                raise PydanticCustomError("merge", "'merge' must name two different values")
        return self


def diagnosis(attributes: list[str]) -> type[Diagnosis]:
    """A verdict; the values to merge come from the attributes."""
    merge = conlist(_allowed(attributes)) | None
    return _answer(Diagnosis, merge=merge)


class Validation(LLMAnswer):
    schema_name = "validation"
    valid: bool


class CaptionValues(LLMAnswer):
    id: int
    values: list[int]


class Assignments(LLMAnswer):
    schema_name = "assignment"
    answers: list[CaptionValues]

    @model_validator(mode="after")
    def _ids_once_each(self) -> Assignments:
        n = len(self.answers)
        if sorted(a.id for a in self.answers) != list(range(1, n + 1)):
            raise PydanticCustomError("ids", "'answers' must hold ids 1..{n} once each", {"n": n})
        return self


def assignments(dims: Mapping[str, list[str]], captions: int) -> type[Assignments]:
    """For each of `captions` captions, its id and the number of one value per dimension, in
    the dimensions' order (llm_prompts.value_numbers: 0 is OTHER, 1 the first attribute).

    Numbers must be integers (not strings, not booleans), but a number outside its
    dimension's list is let through: the caller makes it OTHER for that caption alone, so
    that one bad value does not cost the whole batch."""
    most = max((len(attrs) for attrs in dims.values()), default=0)
    number = Annotated[
        StrictInt, WithJsonSchema({"type": "integer", "enum": list(range(most + 1))})
    ]
    k = len(dims)
    row = _answer(CaptionValues, values=conlist(number, min_length=k, max_length=k))
    rows = conlist(row, min_length=captions, max_length=captions)
    return _answer(Assignments, answers=rows)


#: The longest image-generation prompt kept: text-to-image models read about 77 tokens
#: (CLIP's context), so a longer one would be cut by the model anyway.
MAX_IMAGE_PROMPT_CHARS = 400


def _image_prompt(value: str) -> str:
    """One line of plain text: an answer is untrusted (it may echo a caption's instructions)
    and is stored and shown as a prompt, so control and format characters are refused."""
    if not value.strip():
        raise PydanticCustomError("blank", "must be a non-empty string")
    if len(value) > MAX_IMAGE_PROMPT_CHARS:
        raise PydanticCustomError(
            "too_long", "must be at most {most} characters", {"most": MAX_IMAGE_PROMPT_CHARS}
        )
    if any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise PydanticCustomError(
            "control_characters", "must be one line without control characters"
        )
    return value.strip()


class ImagePrompt(LLMAnswer):
    """A prompt for a text-to-image model that shows one subpopulation."""

    schema_name = "image_prompt"
    prompt: Annotated[str, AfterValidator(_image_prompt)]
