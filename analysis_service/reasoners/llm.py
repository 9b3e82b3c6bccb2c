"""The SSD-LLM steps through an OpenAI-compatible LLM: dimensions by generate-and-select,
attributes merged across rounds, self-consistency refinement, and batched assignment.

Every sample is drawn from a generator seeded by (job seed, subject, step, round), so the
same job configuration sends the same requests; with the call log as cache a resumed job pays
only for what it had not asked yet.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from analysis_service.reasoners import llm_prompts as p
from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, ImageAnswer, ranked
from analysis_service.reasoners.llm_answers import (
    AttributesByDimension,
    Diagnosis,
    Dimensions,
    LLMAnswer,
)
from analysis_service.reasoners.llm_assign import Assigner
from analysis_service.reasoners.llm_client import Answer, LLMClient
from analysis_service.reasoners.llm_prompts import Step
from analysis_service.reasoners.names import clean_names, clean_one
from analysis_service.reasoners.saturation import Unchanged, Votes
from analysis_service.settings import DiscoverySteps
from shared.concurrency import run_all

A = TypeVar("A", bound=LLMAnswer)
K = TypeVar("K", bound=Hashable)
logger = logging.getLogger(__name__)


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(map(str, parts)))  # str seeds hash the same in every process


def _sample(captions: list[str], n: int, rng: random.Random) -> list[str]:
    return rng.sample(captions, n) if len(captions) > n else list(captions)


@dataclass(frozen=True)
class _Rounds:
    """Sampled rounds of a step: the step, the name in their samples' seeds, how many rounds,
    captions in each."""

    step: Step
    tag: str
    count: int
    captions: int


class LLMReasoner:
    def __init__(self, client: LLMClient, steps: DiscoverySteps):
        self._client = client
        self._steps = steps
        self._assigner = Assigner(client, steps)
        self.name = f"llm:{client.model}"

    async def _ask(
        self, step: Step, subject: str, ask: p.Ask[A], seed: int, temperature: float = 0.0
    ) -> Answer[A]:
        return await self._client.ask(
            step=step,
            subject=subject,
            messages=ask.messages,
            answer=ask.answer,
            seed=seed,
            temperature=temperature,
        )

    async def _rounds(
        self,
        rounds: _Rounds,
        subject: str,
        captions: list[str],
        seed: int,
        ask_for: Callable[[list[str]], p.Ask[A]],
        proposals: Callable[[A], Iterable[K]],
    ) -> Votes[K]:
        """One request per round, each about its own seeded sample of the captions, asked in
        waves until the votes of the proposals say the loop is done (saturation.py); the
        votes of the rounds run."""
        c = self._steps
        votes: Votes[K] = Votes(rounds.count, c.dimension_threshold, c.saturation_rounds)
        while not votes.stop():
            wave = range(votes.done, votes.done + votes.next_wave())
            samples = [
                _sample(captions, rounds.captions, _rng(seed, subject, rounds.tag, r)) for r in wave
            ]
            # A class no larger than a sample asks the same question every round: once.
            asks = {tuple(s): ask_for(s) for s in samples}
            asked = await run_all(
                *(self._ask(rounds.step, subject, a, seed) for a in asks.values())
            )
            by_sample = dict(zip(asks, asked, strict=True))
            for sample in samples:
                data = by_sample[tuple(sample)].data
                votes.add(proposals(data) if data is not None else ())
                if votes.stop():
                    break
        logger.debug("%s of %r: %d of %d rounds", rounds.step, subject, votes.done, rounds.count)
        return votes

    async def _merged(
        self,
        step: Step,
        subject: str,
        dimension: str,
        candidates: list[str],
        seed: int,
        exactly: int | None,
    ) -> list[str] | None:
        """The candidate values merged by the LLM, normalized and de-duplicated; None when it
        gave no valid answer."""
        ask = p.merge_attributes(
            subject, dimension, candidates, exactly, self._steps.max_attributes
        )
        merged = await self._ask(step, subject, ask, seed)
        if merged.data is None:
            return None
        return clean_names(merged.data.attributes, "attribute", subject)

    # Step 1: dimensions, generate and select.
    async def _dimensions(self, subject: str, captions: list[str], seed: int) -> list[str]:
        c = self._steps
        rounds = _Rounds(Step.DIMENSIONS, "dim", c.dimension_rounds, c.dimension_captions)
        ask = partial(p.suggest_dimensions, subject, count=c.dimensions_per_round)

        def names(answer: Dimensions) -> list[str]:
            return clean_names(answer.dimensions, "dimension", subject)

        votes = await self._rounds(rounds, subject, captions, seed, ask, names)
        # S(r) of saturation.py, ranked; with every round run, the reference's selection.
        kept = [d for d, _ in ranked(votes.counts) if d in votes.selected()]
        kept = kept or [d for d, _ in ranked(votes.counts, 3)]
        if len(kept) <= 1:
            return kept
        merged = await self._ask(Step.DIMENSIONS, subject, p.merge_dimensions(subject, kept), seed)
        return list(dict.fromkeys(merged.data.dimensions)) if merged.data else kept

    # Step 2: attributes of every dimension, proposed together, merged per dimension.
    async def _attributes(
        self,
        subject: str,
        dimensions: list[str],
        captions: list[str],
        seed: int,
        exactly: int | None,
    ) -> dict[str, list[str]]:
        c = self._steps
        rounds = _Rounds(Step.ATTRIBUTES, "attr", c.attribute_rounds, c.attribute_captions)
        ask = partial(p.suggest_attributes_all, subject, dimensions, most=c.max_attributes)

        def pairs(answer: AttributesByDimension) -> list[tuple[str, str]]:
            return [
                (dim, value)
                for dim in dimensions
                for value in clean_names(answer.attributes[dim], "attribute", subject)
                if value != OTHER
            ]

        votes = await self._rounds(rounds, subject, captions, seed, ask, pairs)
        counts: dict[str, Counter[str]] = {d: Counter() for d in dimensions}
        for (dim, value), n in votes.counts.items():
            counts[dim][value] = n  # rounds that proposed the value for the dimension
        merged = await run_all(
            *(self._merge(subject, d, counts[d], seed, exactly) for d in dimensions)
        )
        return dict(zip(dimensions, merged, strict=True))

    async def _merge(
        self, subject: str, dimension: str, counts: Counter[str], seed: int, exactly: int | None
    ) -> list[str]:
        c = self._steps
        candidates = [a for a, _ in ranked(counts, 4 * c.max_attributes)]
        if len(candidates) < 2:
            return candidates
        merged = await self._merged(Step.ATTRIBUTES, subject, dimension, candidates, seed, exactly)
        return candidates[: exactly or c.max_attributes] if merged is None else merged

    # Step 3: self-consistency refinement, every dimension judged on each sampled caption.
    async def _refine(
        self,
        subject: str,
        attrs: dict[str, list[str]],
        captions: list[str],
        seed: int,
        exactly: int | None,
    ) -> dict[str, list[str]]:
        c = self._steps
        attrs = {d: list(a) for d, a in attrs.items()}
        unchanged = Unchanged(c.saturation_rounds)
        r = 0
        while r < c.refine_rounds and not unchanged.stop():
            updates = await self._refine_round(subject, attrs, captions, seed, r, exactly)
            unchanged.add(any(attrs[d] != u for d, u in updates.items()))
            attrs.update(updates)
            r += 1
        logger.debug("refinement of %r: %d of %d rounds", subject, r, c.refine_rounds)
        final = await run_all(
            *(self._final(subject, d, a, seed, exactly) for d, a in attrs.items())
        )
        return dict(zip(attrs, final, strict=True))

    async def _refine_round(
        self,
        subject: str,
        attrs: dict[str, list[str]],
        captions: list[str],
        seed: int,
        r: int,
        exactly: int | None,
    ) -> dict[str, list[str]]:
        """Round r: one sampled caption classified refine_repeats times; the new lists of the
        dimensions whose answers disagreed."""
        caption = _rng(seed, subject, "refine", r).choice(captions)
        ask = p.classify_all(subject, attrs, caption)
        repeats = await run_all(
            *(
                self._ask(Step.REFINEMENT, subject, ask, seed * 1000 + r * 10 + t, temperature=0.7)
                for t in range(self._steps.refine_repeats)
            )
        )
        answered = [a.data.choices for a in repeats if a.data is not None]
        disputed = [d for d in attrs if len({choice[d] for choice in answered}) > 1]
        updates = await run_all(
            *(
                self._diagnose(
                    subject, d, attrs[d], caption, [ch[d] for ch in answered], seed, exactly
                )
                for d in disputed
            )
        )
        return dict(zip(disputed, updates, strict=True))

    async def _diagnose(
        self,
        subject: str,
        dimension: str,
        attrs: list[str],
        caption: str,
        choices: list[str],
        seed: int,
        exactly: int | None,
    ) -> list[str]:
        verdict = await self._ask(
            Step.REFINEMENT, subject, p.diagnose(subject, dimension, attrs, caption, choices), seed
        )
        return await self._apply(subject, dimension, attrs, verdict, seed, exactly)

    async def _final(
        self, subject: str, dimension: str, attrs: list[str], seed: int, exactly: int | None
    ) -> list[str]:
        """A last de-duplication, unless the count the user asked for is already met."""
        if (exactly and len(attrs) == exactly) or len(attrs) < 2:
            return attrs
        final = await self._merged(Step.REFINEMENT, subject, dimension, attrs, seed, exactly)
        return attrs if final is None else final

    async def _apply(
        self,
        subject: str,
        dimension: str,
        attrs: list[str],
        verdict: Answer[Diagnosis],
        seed: int,
        exactly: int | None,
    ) -> list[str]:
        """'redundant' really merges; 'missing' adds only after a validation call."""
        if verdict.data is None:
            return attrs
        found = verdict.data
        may_shrink = exactly is None or len(attrs) > exactly
        if found.verdict == "redundant" and found.merge and may_shrink:
            keep, drop = found.merge
            merged_name = found.merged_name and clean_one(found.merged_name, "attribute", subject)
            name = merged_name or keep
            return list(dict.fromkeys(name if a == keep else a for a in attrs if a != drop))
        if found.verdict == "missing" and found.new_attribute:
            new = clean_one(found.new_attribute, "attribute", subject)
            room = exactly is None or len(attrs) < exactly
            if new and new not in attrs and new != OTHER and room:
                check = await self._ask(
                    Step.REFINEMENT, subject, p.validate_new(subject, dimension, attrs, new), seed
                )
                if check.data is not None and check.data.valid:
                    return [*attrs, new]
        return attrs

    async def propose(
        self, subject: str, captions: list[str], seed: int, goal: Goal | None = None
    ) -> list[DimensionProposal]:
        goal = goal or Goal()
        if not captions:
            return []
        if goal.criterion:
            dimensions = clean_names([goal.criterion], "dimension", subject)
        else:
            dimensions = await self._dimensions(subject, captions, seed)
        if not dimensions:
            return []
        attrs = await self._attributes(subject, dimensions, captions, seed, goal.num_attributes)
        usable = {d: a for d, a in attrs.items() if len(a) >= 2}
        if usable:
            usable = await self._refine(subject, usable, captions, seed, goal.num_attributes)
        return [DimensionProposal(d, a) for d, a in usable.items() if len(a) >= 2]

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        return await self._assigner.assign(subject, dimensions, captions)
