"""Opaque cursors of keyset pages: the sort key of a page's last row, which the next page
starts after (`WHERE (key) > (cursor)` on an index), so page 10,000 costs what page 1 does
where OFFSET would read and drop every row before it.

A cursor is base64url of the JSON array of that key. It is only a position, never a grant: a
client may forge one, so it is checked like any input (422 when it does not decode to the
expected types) and can only move within the query it is given to."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from shared.errors import InvalidRequest

#: The longest cursor accepted; the longest key (a 4096-character path and two numbers) fits.
MAX_CURSOR_CHARS = 6000
#: Every cursor is base64url: declared, so that a schema-valid cursor is also a URL every HTTP
#: server takes (6,000 four-byte characters, percent-encoded, were a 72 KB request line).
CURSOR_PATTERN = r"^[A-Za-z0-9_=-]*$"

After = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        pattern=CURSOR_PATTERN,
        description="The `next` cursor of the previous page; leave out for the first page.",
    ),
]


def encode(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key in cursor, its fields of these types in order; InvalidRequest otherwise."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidRequest("after: not a cursor this API gave") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(_storable(v, t) for v, t in zip(key, types, strict=True))
    ):
        raise InvalidRequest("after: not a cursor of this listing")
    return tuple(key)


def _storable(value: object, kind: type) -> bool:
    """value is a kind that the database can compare with a column of it: a bigint, or text
    with no NUL and no lone surrogate (either would be a database error, not a 422)."""
    if kind is int:  # bool is an int to Python, and no key here holds one
        return type(value) is int and -(2**63) <= value < 2**63
    if kind is str and isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    return False
