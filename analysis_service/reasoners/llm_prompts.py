"""What each SSD-LLM stage asks, the JSON schema of the answer, and how it is checked."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from analysis_service.reasoners.base import OTHER

SYSTEM = (
    "You analyse the descriptions of images in a dataset to find how the images differ. "
    "Answer with a single JSON object that follows the requested schema, and nothing else."
)
VERDICTS = ("hallucination", "hard_case", "redundant", "missing")


@dataclass
class Ask:
    """One request: messages, the answer's schema and a validator (None when valid)."""

    name: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    validate: Callable[[Any], str | None]


def normalize(name: str) -> str:
    name = re.sub(r"[^\w\s&/-]", " ", name.lower())
    return re.sub(r"\s+", " ", name).strip()


def _listing(captions: list[str]) -> str:
    return "\n".join(f"{i}. {c.strip()}" for i, c in enumerate(captions, 1))


def _messages(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _names_schema(key: str, most: int, least: int = 1, enum: list[str] | None = None) -> dict:
    items: dict[str, Any] = {"type": "string"}
    if enum is not None:
        items["enum"] = enum
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": items, "minItems": least, "maxItems": most}},
        "required": [key],
        "additionalProperties": False,
    }


def _names_validator(
    key: str, least: int, most: int, words: int = 3, allowed: set[str] | None = None
) -> Callable[[Any], str | None]:
    def check(data: Any) -> str | None:
        values = data.get(key) if isinstance(data, dict) else None
        if not isinstance(values, list) or not all(
            isinstance(v, str) and v.strip() for v in values
        ):
            return f"'{key}' must be a list of non-empty strings"
        if not least <= len(values) <= most:
            return f"'{key}' must hold between {least} and {most} items, not {len(values)}"
        if any(len(v.split()) > words for v in values):
            return f"each item of '{key}' must be at most {words} words"
        if allowed is not None and (bad := [v for v in values if v not in allowed]):
            return f"not in the allowed list: {bad[:5]}"
        return None

    return check


def suggest_dimensions(subject: str, captions: list[str], count: int) -> Ask:
    user = (
        f"Descriptions of images of {subject}:\n{_listing(captions)}\n\n"
        f"Propose {count} dimensions along which these images of {subject} differ from each "
        "other (for example background, action, lighting). Each dimension is one lower-case "
        'word. Answer as {"dimensions": [...]}.'
    )
    return Ask(
        "dimensions",
        _messages(user),
        _names_schema("dimensions", count),
        _names_validator("dimensions", 1, count, words=2),
    )


def merge_dimensions(subject: str, candidates: list[str]) -> Ask:
    user = (
        f"These dimensions were proposed to describe how images of {subject} differ: "
        f"{candidates}. Merge near-synonyms (keep one name of each group) and return the final "
        'list, using only names from the list. Answer as {"dimensions": [...]}.'
    )
    return Ask(
        "dimensions",
        _messages(user),
        _names_schema("dimensions", len(candidates), enum=candidates),
        _names_validator("dimensions", 1, len(candidates), 2, set(candidates)),
    )


def suggest_attributes_all(
    subject: str, dimensions: list[str], captions: list[str], most: int
) -> Ask:
    """One sample of captions, the values of every dimension at once: the captions are sent
    once per round instead of once per round and dimension."""
    wanted = "\n".join(f"- {d}" for d in dimensions)
    user = (
        f"Descriptions of images of {subject}:\n{_listing(captions)}\n\n"
        f"For each dimension below, list up to {most} distinct values that these images show, "
        f"each a short phrase of at most three words:\n{wanted}\n"
        'Answer as {"attributes": {"<dimension>": [...], ...}}.'
    )
    per_dim = {"type": "array", "items": {"type": "string"}, "maxItems": most}
    schema = {
        "type": "object",
        "properties": {
            "attributes": {
                "type": "object",
                "properties": dict.fromkeys(dimensions, per_dim),
                "required": dimensions,
                "additionalProperties": False,
            }
        },
        "required": ["attributes"],
        "additionalProperties": False,
    }

    def check(data: Any) -> str | None:
        found = data.get("attributes") if isinstance(data, dict) else None
        if not isinstance(found, dict):
            return "'attributes' must map each dimension to a list"
        for dim in dimensions:
            values = found.get(dim)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                return f"'attributes.{dim}' must be a list of strings"
            if len(values) > most or any(len(v.split()) > 4 for v in values):
                return f"'attributes.{dim}' must hold at most {most} short phrases"
        return None

    return Ask("attributes", _messages(user), schema, check)


def classify_all(subject: str, dimensions: dict[str, list[str]], caption: str) -> Ask:
    """One caption, one value per dimension (the refinement stage's sampled question)."""
    options = {d: [*attrs, OTHER] for d, attrs in dimensions.items()}
    listing = "\n".join(f"- {d}: {opts}" for d, opts in options.items())
    user = (
        f"Description of an image of {subject}:\n{caption.strip()}\n\n"
        f"Which value of each dimension does it show? Allowed values:\n{listing}\n"
        f"Choose one per dimension; '{OTHER}' when none fits. Answer as "
        '{"choices": {"<dimension>": "<value>", ...}}.'
    )
    schema = {
        "type": "object",
        "properties": {
            "choices": {
                "type": "object",
                "properties": {d: {"type": "string", "enum": o} for d, o in options.items()},
                "required": list(options),
                "additionalProperties": False,
            }
        },
        "required": ["choices"],
        "additionalProperties": False,
    }

    def check(data: Any) -> str | None:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, dict):
            return "'choices' must map each dimension to a value"
        for dim, opts in options.items():
            if choices.get(dim) not in opts:
                return f"'choices.{dim}' must be one of {opts}"
        return None

    return Ask("choices", _messages(user), schema, check)


def merge_attributes(
    subject: str, dimension: str, candidates: list[str], exactly: int | None, most: int
) -> Ask:
    size = f"exactly {exactly}" if exactly else f"at most {most}"
    user = (
        f"Values proposed for the dimension '{dimension}' of images of {subject}: "
        f"{candidates}. Merge duplicates and near-synonyms into {size} distinct values that "
        'do not overlap, each at most three words. Answer as {"attributes": [...]}.'
    )
    least = exactly or 2
    top = exactly or most
    return Ask(
        "attributes",
        _messages(user),
        _names_schema("attributes", top, least),
        _names_validator("attributes", least, top),
    )


def _choice_schema(options: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"attribute": {"type": "string", "enum": options}},
        "required": ["attribute"],
        "additionalProperties": False,
    }


def classify_one(subject: str, dimension: str, attributes: list[str], caption: str) -> Ask:
    options = [*attributes, OTHER]
    user = (
        f"Description of an image of {subject}:\n{caption.strip()}\n\n"
        f"Which value of the dimension '{dimension}' does it show? Choose one of {options}; "
        f'\'{OTHER}\' when none fits. Answer as {{"attribute": "..."}}.'
    )

    def check(data: Any) -> str | None:
        value = data.get("attribute") if isinstance(data, dict) else None
        return None if value in options else f"'attribute' must be one of {options}"

    return Ask("choice", _messages(user), _choice_schema(options), check)


def diagnose(
    subject: str, dimension: str, attributes: list[str], caption: str, answers: list[str]
) -> Ask:
    user = (
        f"Description of an image of {subject}:\n{caption.strip()}\n\n"
        f"Asked several times which value of '{dimension}' (one of {attributes}) it shows, "
        f"the answers disagreed: {answers}. Why? verdict: 'hallucination' (the description "
        "is unreliable), 'hard_case' (genuinely ambiguous), 'redundant' (two values mean the "
        "same: give them in 'merge' and the name to keep in 'merged_name'), or 'missing' (a "
        "value is missing: give it in 'new_attribute', at most three words). Use null for "
        "fields that do not apply."
    )
    nullable_name = {"type": ["string", "null"]}
    schema = {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": list(VERDICTS)},
            "merge": {"type": ["array", "null"], "items": {"type": "string", "enum": attributes}},
            "merged_name": nullable_name,
            "new_attribute": nullable_name,
        },
        "required": ["verdict", "merge", "merged_name", "new_attribute"],
        "additionalProperties": False,
    }

    def check(data: Any) -> str | None:
        if not isinstance(data, dict) or data.get("verdict") not in VERDICTS:
            return f"'verdict' must be one of {list(VERDICTS)}"
        if data["verdict"] == "redundant":
            merge = data.get("merge") or []
            if len(merge) != 2 or any(m not in attributes for m in merge) or merge[0] == merge[1]:
                return "'merge' must name two different values from the list"
        if data["verdict"] == "missing":
            new = data.get("new_attribute")
            if not isinstance(new, str) or not new.strip() or len(new.split()) > 3:
                return "'new_attribute' must be a phrase of at most three words"
        return None

    return Ask("diagnosis", _messages(user), schema, check)


def validate_new(subject: str, dimension: str, attributes: list[str], new: str) -> Ask:
    user = (
        f"The dimension '{dimension}' of images of {subject} has the values {attributes}. "
        f"Is '{new}' a real, distinct value of this dimension that none of them covers? "
        'Answer as {"valid": true} or {"valid": false}.'
    )
    schema = {
        "type": "object",
        "properties": {"valid": {"type": "boolean"}},
        "required": ["valid"],
        "additionalProperties": False,
    }

    def check(data: Any) -> str | None:
        ok = isinstance(data, dict) and isinstance(data.get("valid"), bool)
        return None if ok else "'valid' must be true or false"

    return Ask("validation", _messages(user), schema, check)


def assign_batch(
    subject: str, dimensions: dict[str, list[str]], captions: list[str], again: bool = False
) -> Ask:
    """Several captions, every dimension answered at once. Each answer is the caption's id
    and its values in the order the dimensions are listed: the compact form keeps the
    output near one short word per caption and dimension."""
    options = {d: [*attrs, OTHER] for d, attrs in dimensions.items()}
    listing = "\n".join(f"{i}. {d}: {opts}" for i, (d, opts) in enumerate(options.items(), 1))
    order = ", ".join(f'"<{d}>"' for d in options)
    user = (
        f"Dimensions of images of {subject}, in this order, with their allowed values:\n"
        f"{listing}\n\nDescriptions:\n{_listing(captions)}\n\n"
        f"For each description give its id and one allowed value per dimension, in the order "
        f"above ('{OTHER}' when none fits). Answer as "
        f'{{"answers": [{{"id": 1, "values": [{order}]}}, ...]}}.'
    )
    if again:
        user += " An earlier answer used values outside these lists: use only the listed ones."
    every_value = sorted({v for opts in options.values() for v in opts})
    item = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "values": {
                "type": "array",
                "items": {"type": "string", "enum": every_value},
                "minItems": len(options),
                "maxItems": len(options),
            },
        },
        "required": ["id", "values"],
        "additionalProperties": False,
    }
    n = len(captions)
    schema = {
        "type": "object",
        "properties": {"answers": {"type": "array", "items": item, "minItems": n, "maxItems": n}},
        "required": ["answers"],
        "additionalProperties": False,
    }

    def check(data: Any) -> str | None:
        answers = data.get("answers") if isinstance(data, dict) else None
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            return "'answers' must be a list of objects"
        ids = sorted(int(a["id"]) for a in answers if isinstance(a.get("id"), int))
        if ids != list(range(1, n + 1)):
            return f"'answers' must hold ids 1..{n} once each"
        if any(
            not isinstance(a.get("values"), list) or len(a["values"]) != len(options)
            for a in answers
        ):
            return f"each answer needs 'values' with {len(options)} entries, one per dimension"
        # A value outside a dimension's list is handled per caption by the caller, so that
        # one bad value does not cost the whole batch.
        return None

    return Ask("assignment", _messages(user), schema, check)
