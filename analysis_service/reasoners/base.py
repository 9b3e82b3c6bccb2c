"""What every reasoner does: propose a subject's dimensions and attributes, then assign."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
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


def coerce_choice(value: object, allowed: Collection[str]) -> tuple[str, str | None]:
    """The value when it is one of `allowed` (or OTHER), with no note; anything else becomes
    OTHER with a note saying why. An answer outside the list is recorded as 'other', never as
    an attribute."""
    if isinstance(value, str) and (value == OTHER or value in allowed):
        return value, None
    return OTHER, f"answer {value!r} is not an allowed value"


@dataclass
class ImageAnswer:
    """One caption's attribute per dimension; notes say why a forced 'other' was recorded."""

    choices: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def choose(self, dimension: str, value: object, allowed: Collection[str]) -> None:
        """Record `value` for `dimension`, or OTHER with a note (see coerce_choice)."""
        self.choices[dimension], note = coerce_choice(value, allowed)
        if note is not None:
            self.notes[dimension] = note

    def unanswered(self, dimension: str, problem: str | None) -> None:
        """No usable answer for `dimension`: OTHER, with the reason."""
        self.choices[dimension] = OTHER
        self.notes[dimension] = f"invalid answer: {problem}"

    @classmethod
    def of(cls, dims: Mapping[str, Collection[str]], values: Mapping[str, object]) -> ImageAnswer:
        """Each dimension's value from `values`, checked against its allowed attributes."""
        answer = cls()
        for dimension, allowed in dims.items():
            answer.choose(dimension, values.get(dimension), allowed)
        return answer

    @classmethod
    def failed(cls, dims: Collection[str], problem: str | None) -> ImageAnswer:
        answer = cls()
        for dimension in dims:
            answer.unanswered(dimension, problem)
        return answer


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
