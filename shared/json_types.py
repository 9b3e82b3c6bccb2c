"""Request fields that take only the JSON types their schema names.

Pydantic's lax mode turns "12" and true into 12 and 0 into false: requests the published
schema calls invalid would be taken. These refuse them, and still take 12.0 for an integer,
as JSON Schema does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator, StrictBool


def _number_not_text(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise ValueError("Input should be a JSON integer")
    return value


#: `Annotated[int, Field(ge=..., le=...), NUMBER_NOT_TEXT]`: the bounds must come first, or
#: pydantic leaves them out of the JSON Schema (it writes 'ge' instead of 'minimum').
NUMBER_NOT_TEXT = BeforeValidator(_number_not_text)
JsonBool = StrictBool

__all__ = ["NUMBER_NOT_TEXT", "JsonBool"]
