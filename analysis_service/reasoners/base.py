"""What every reasoner does: propose a subject's dimensions and attributes, then assign."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

OTHER = "other"


def ranked(counts: Counter[str], n: int | None = None) -> list[tuple[str, int]]:
    """Most common first, ties broken by name: unlike Counter.most_common, the order does not
    depend on insertion order, which for strings that came through a set changes from one
    process to the next (hash randomisation). The same job must send the same requests in
    every worker, or its cached answers would not be found."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass
class DimensionProposal:
    name: str
    attributes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Goal:
    """What the user asked for: a criterion fixes the one dimension to build (organization
    mode); num_attributes asks for exactly that many attributes."""

    criterion: str | None = None
    num_attributes: int | None = None


@dataclass
class ImageAnswer:
    """One caption's attribute per dimension; notes say why a forced 'other' was recorded."""

    choices: dict[str, str]
    notes: dict[str, str] = field(default_factory=dict)


class Reasoner(Protocol):
    #: Stored with the job, so results say what produced them.
    name: str

    async def propose(
        self, subject: str, captions: list[str], seed: int, goal: Goal | None = None
    ) -> list[DimensionProposal]:
        """Dimensions (each with two or more attributes) that split the captions of a subject."""
        ...

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        """For each caption, dimension name -> one of that dimension's attributes or OTHER."""
        ...
