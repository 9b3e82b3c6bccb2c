"""What every reasoner does: propose a class's dimensions and attributes, then assign."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

OTHER = "other"


@dataclass
class DimensionProposal:
    name: str
    attributes: list[str] = field(default_factory=list)


class Reasoner(Protocol):
    #: Stored with the job, so results say what produced them.
    name: str

    async def propose(
        self, subject: str, captions: list[str], seed: int
    ) -> list[DimensionProposal]:
        """Dimensions (each with two or more attributes) that split the captions of a subject."""
        ...

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[dict[str, str]]:
        """For each caption, dimension name -> one of that dimension's attributes or OTHER."""
        ...
