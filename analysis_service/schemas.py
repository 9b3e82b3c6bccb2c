"""Wire models shared by the API's domains."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Number of items over all pages.")
    limit: int
    offset: int


class CursorPage(BaseModel, Generic[T]):
    """A keyset page: what follows it is asked for with `after=next`."""

    items: list[T]
    limit: int
    next: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
