"""When a round loop of discovery may stop before its last round.

The round counts of the reference code (DIMENSION_ROUNDS, ATTRIBUTE_ROUNDS, REFINE_ROUNDS)
are maxima. A loop that has saturated stops; with SATURATION_ROUNDS = N > 0:

Votes (dimension and attribute rounds). After r of at most R rounds, a candidate's count is
the number of rounds that proposed it, and the selection is S(r) = {candidates proposed in
more than θ·r rounds}, θ the share threshold (DIMENSION_THRESHOLD): the reference's rule with
the rounds run in place of R, so S(R) is exactly the reference's selection. The loop stops
after round r when either

- S(r) is *settled* (exact, loses nothing): counts never fall, so a candidate with count
  > θ·R is in S(R) whatever follows; a candidate with count + (R − r) ≤ θ·R is out of S(R)
  even if it is proposed in every remaining round. When every candidate seen is one or the
  other, and a candidate never seen could not pass either ((R − r) ≤ θ·R), S(R) is already
  known, and it equals S(r). This can only happen from round ⌈(1 − θ)·R⌉ on.
- or the loop has *saturated*: N consecutive rounds were quiet, a round being quiet when it
  brought no new candidate into the selection (every member of S(r) was a member of some
  earlier S). A candidate whose share is near θ drops out and comes back as its count and
  θ·r move past each other; that is not new. The earliest stop is round N + 1. This rule
  is an estimate: a candidate seen rarely so far might have passed later.

When the exact rule stops a loop, the selection has the full run's members (their order by
count may differ). Dimensions are selected by S; the attribute step votes on (dimension,
value) pairs only to decide when to stop, and merges each dimension's most proposed values
of the rounds run, as it does after a full run.

Refinement is sequential edits of the attribute lists, not votes: it stops once N
consecutive rounds left every list unchanged.

N = 0 turns early stopping off: every loop runs all its rounds, as the reference does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class Votes(Generic[K]):
    """The counts of a vote loop of at most `rounds` rounds, selected at share `threshold`,
    stopping after `patience` quiet rounds (0: never early)."""

    rounds: int
    threshold: float
    patience: int
    counts: Counter[K] = field(default_factory=Counter)
    done: int = 0
    _quiet: int = 0  # consecutive rounds that brought no new candidate into the selection
    _ever: frozenset[K] = frozenset()  # every candidate selected after some round so far

    def add(self, proposed: Iterable[K]) -> None:
        """One round's proposals (each candidate counted once a round; an unanswered round
        proposes nothing, and still counts as a round)."""
        self.counts.update(set(proposed))
        self.done += 1
        now = self.selected()
        quiet = self.done > 1 and now <= self._ever
        self._quiet = self._quiet + 1 if quiet else 0
        self._ever |= now

    def selected(self) -> frozenset[K]:
        """S(r): proposed in more than `threshold` of the rounds run."""
        bar = self.threshold * self.done
        return frozenset(k for k, n in self.counts.items() if n > bar)

    def settled(self) -> bool:
        """Whether S(rounds) is already known (see the module's exact rule)."""
        bar, left = self.threshold * self.rounds, self.rounds - self.done
        if left > bar:  # a candidate not seen yet could still pass
            return False
        return all(n > bar or n + left <= bar for n in self.counts.values())

    def saturated(self) -> bool:
        return self._quiet >= self.patience

    def stop(self) -> bool:
        """Whether the loop ends now: all rounds run, or (early stopping on) settled or
        saturated."""
        if self.done >= self.rounds:
            return True
        return self.patience > 0 and (self.settled() or self.saturated())

    def next_wave(self) -> int:
        """How many rounds to ask side by side next: all of them without early stopping;
        with it, up to the earliest round a stop is possible, then one at a time (a round
        asked beyond the stop would be paid for and not used)."""
        left = self.rounds - self.done
        if self.patience == 0:
            return left
        return min(left, max(1, self.patience + 1 - self.done))


@dataclass
class Unchanged:
    """Refinement's rule: stop once `patience` consecutive rounds changed nothing (0: never)."""

    patience: int
    _unchanged: int = 0

    def add(self, changed: bool) -> None:
        self._unchanged = 0 if changed else self._unchanged + 1

    def stop(self) -> bool:
        return self.patience > 0 and self._unchanged >= self.patience
