"""The SSD-LLM stages through an OpenAI-compatible LLM: dimensions by generate-and-select,
attributes merged across rounds, self-consistency refinement, and batched assignment.

Every sample is drawn from a generator seeded by (job seed, subject, stage, round), so the
same job configuration sends the same requests; with the call log as cache a resumed job pays
only for what it had not asked yet.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from analysis_service.reasoners import llm_prompts as p
from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, ImageAnswer, ranked
from analysis_service.reasoners.llm_client import Answer, LLMClient

T = TypeVar("T")


@dataclass(frozen=True)
class StageConfig:
    dimension_rounds: int = 10
    dimension_captions: int = 20
    dimension_threshold: float = 0.2
    dimensions_per_round: int = 5
    attribute_rounds: int = 20
    attribute_captions: int = 20
    max_attributes: int = 10
    refine_rounds: int = 20
    refine_repeats: int = 3
    captions_per_call: int = 40
    assignment_mode: str = "batched"


async def _all(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """Like gather, but the first failure cancels the others before it propagates: no call
    outlives the job that asked for it."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(map(str, parts)))  # str seeds hash the same in every process


def _sample(captions: list[str], n: int, rng: random.Random) -> list[str]:
    return rng.sample(captions, n) if len(captions) > n else list(captions)


class LLMReasoner:
    def __init__(self, client: LLMClient, config: StageConfig):
        self._client = client
        self._config = config
        self.name = f"llm:{client.config.model}"

    async def _ask(
        self, stage: str, subject: str, ask: p.Ask, seed: int, temperature: float = 0.0
    ) -> Answer:
        return await self._client.ask(
            stage=stage,
            subject=subject,
            messages=ask.messages,
            schema=ask.schema,
            name=ask.name,
            seed=seed,
            temperature=temperature,
            validate=ask.validate,
        )

    # Stage 2: dimensions, generate and select.
    async def _dimensions(self, subject: str, captions: list[str], seed: int) -> list[str]:
        c = self._config
        asks = [
            p.suggest_dimensions(
                subject,
                _sample(captions, c.dimension_captions, _rng(seed, subject, "dim", r)),
                c.dimensions_per_round,
            )
            for r in range(c.dimension_rounds)
        ]
        answers = await _all(*(self._ask("dimensions", subject, a, seed) for a in asks))
        votes: Counter[str] = Counter()
        for answer in answers:
            if answer.data is not None:
                votes.update({p.normalize(d) for d in answer.data["dimensions"]} - {""})
        kept = [d for d, n in ranked(votes) if n > c.dimension_rounds * c.dimension_threshold]
        kept = kept or [d for d, _ in ranked(votes, 3)]
        if len(kept) <= 1:
            return kept
        merged = await self._ask("dimensions", subject, p.merge_dimensions(subject, kept), seed)
        return list(dict.fromkeys(merged.data["dimensions"])) if merged.data else kept

    # Stage 3: attributes of every dimension, proposed together, merged per dimension.
    async def _attributes(
        self,
        subject: str,
        dimensions: list[str],
        captions: list[str],
        seed: int,
        exactly: int | None,
    ) -> dict[str, list[str]]:
        c = self._config
        asks = [
            p.suggest_attributes_all(
                subject,
                dimensions,
                _sample(captions, c.attribute_captions, _rng(seed, subject, "attr", r)),
                c.max_attributes,
            )
            for r in range(c.attribute_rounds)
        ]
        answers = await _all(*(self._ask("attributes", subject, a, seed) for a in asks))
        counts: dict[str, Counter[str]] = {d: Counter() for d in dimensions}
        for answer in answers:
            if answer.data is not None:
                for dim in dimensions:
                    values = {p.normalize(v) for v in answer.data["attributes"][dim]}
                    counts[dim].update(values - {"", OTHER})
        merged = await _all(
            *(self._merge(subject, d, counts[d], seed, exactly) for d in dimensions)
        )
        return dict(zip(dimensions, merged, strict=True))

    async def _merge(
        self, subject: str, dimension: str, counts: Counter[str], seed: int, exactly: int | None
    ) -> list[str]:
        c = self._config
        candidates = [a for a, _ in ranked(counts, 4 * c.max_attributes)]
        if len(candidates) < 2:
            return candidates
        merge = p.merge_attributes(subject, dimension, candidates, exactly, c.max_attributes)
        merged = await self._ask("attributes", subject, merge, seed)
        if merged.data is None:
            return candidates[: exactly or c.max_attributes]
        return list(dict.fromkeys(p.normalize(a) for a in merged.data["attributes"]))

    # Stage 4: self-consistency refinement, every dimension judged on each sampled caption.
    async def _refine(
        self,
        subject: str,
        attrs: dict[str, list[str]],
        captions: list[str],
        seed: int,
        exactly: int | None,
    ) -> dict[str, list[str]]:
        c = self._config
        attrs = {d: list(a) for d, a in attrs.items()}
        for r in range(c.refine_rounds):
            caption = _rng(seed, subject, "refine", r).choice(captions)
            ask = p.classify_all(subject, attrs, caption)
            repeats = await _all(
                *(
                    self._ask("refine", subject, ask, seed * 1000 + r * 10 + t, temperature=0.7)
                    for t in range(c.refine_repeats)
                )
            )
            answered = [a.data["choices"] for a in repeats if a.data is not None]
            disputed = [d for d in attrs if len({choice[d] for choice in answered}) > 1]
            updates = await _all(
                *(
                    self._diagnose(
                        subject, d, attrs[d], caption, [ch[d] for ch in answered], seed, exactly
                    )
                    for d in disputed
                )
            )
            attrs.update(zip(disputed, updates, strict=True))
        final = await _all(*(self._final(subject, d, a, seed, exactly) for d, a in attrs.items()))
        return dict(zip(attrs, final, strict=True))

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
            "refine", subject, p.diagnose(subject, dimension, attrs, caption, choices), seed
        )
        return await self._apply(subject, dimension, attrs, verdict, seed, exactly)

    async def _final(
        self, subject: str, dimension: str, attrs: list[str], seed: int, exactly: int | None
    ) -> list[str]:
        """A last de-duplication, unless the count the user asked for is already met."""
        if (exactly and len(attrs) == exactly) or len(attrs) < 2:
            return attrs
        final = await self._ask(
            "refine",
            subject,
            p.merge_attributes(subject, dimension, attrs, exactly, self._config.max_attributes),
            seed,
        )
        if final.data is None:
            return attrs
        return list(dict.fromkeys(p.normalize(a) for a in final.data["attributes"]))

    async def _apply(
        self,
        subject: str,
        dimension: str,
        attrs: list[str],
        verdict: Answer,
        seed: int,
        exactly: int | None,
    ) -> list[str]:
        """'redundant' really merges; 'missing' adds only after a validation call."""
        if verdict.data is None:
            return attrs
        kind = verdict.data["verdict"]
        if kind == "redundant" and (exactly is None or len(attrs) > exactly):
            keep, drop = verdict.data["merge"]
            name = p.normalize(verdict.data.get("merged_name") or keep) or keep
            return list(dict.fromkeys(name if a == keep else a for a in attrs if a != drop))
        if kind == "missing":
            new = p.normalize(verdict.data["new_attribute"])
            room = exactly is None or len(attrs) < exactly
            if new and new not in attrs and new != OTHER and room:
                check = await self._ask(
                    "refine", subject, p.validate_new(subject, dimension, attrs, new), seed
                )
                if check.data is not None and check.data["valid"]:
                    return [*attrs, new]
        return attrs

    async def propose(
        self, subject: str, captions: list[str], seed: int, goal: Goal | None = None
    ) -> list[DimensionProposal]:
        goal = goal or Goal()
        if not captions:
            return []
        if goal.criterion:
            dimensions = [p.normalize(goal.criterion)]
        else:
            dimensions = await self._dimensions(subject, captions, seed)
        if not dimensions:
            return []
        attrs = await self._attributes(subject, dimensions, captions, seed, goal.num_attributes)
        usable = {d: a for d, a in attrs.items() if len(a) >= 2}
        if usable:
            usable = await self._refine(subject, usable, captions, seed, goal.num_attributes)
        return [DimensionProposal(d, a) for d, a in usable.items() if len(a) >= 2]

    # Stage 5: assignment.
    async def _assign_chunk(
        self, subject: str, dims: dict[str, list[str]], captions: list[str], retry: bool = True
    ) -> list[ImageAnswer]:
        """Answers for a chunk; captions given a value outside the lists are asked once more
        on their own, and what is still outside becomes 'other' with the reason."""
        ask = p.assign_batch(subject, dims, captions, again=not retry)
        answer = await self._ask("assign", subject, ask, 0)
        if answer.data is None:
            note = f"invalid answer: {answer.problem}"
            return [
                ImageAnswer(dict.fromkeys(dims, OTHER), dict.fromkeys(dims, note)) for _ in captions
            ]
        by_id = {a["id"]: dict(zip(dims, a["values"], strict=True)) for a in answer.data["answers"]}
        results = []
        for i in range(1, len(captions) + 1):
            choices, notes = {}, {}
            for dim, attrs in dims.items():
                value = by_id[i].get(dim)
                if value in attrs or value == OTHER:
                    choices[dim] = value
                else:
                    choices[dim] = OTHER
                    notes[dim] = f"answer {value!r} is not an allowed value"
            results.append(ImageAnswer(choices, notes))
        retry_at = [i for i, r in enumerate(results) if r.notes] if retry else []
        if retry_at:
            again = await self._assign_chunk(
                subject, dims, [captions[i] for i in retry_at], retry=False
            )
            for i, second in zip(retry_at, again, strict=True):
                results[i] = second
        return results

    async def _assign_reference(
        self, subject: str, dims: dict[str, list[str]], caption: str
    ) -> ImageAnswer:
        """The reference code's pattern: one call per image and dimension."""
        choices, notes = {}, {}
        for dim, attrs in dims.items():
            answer = await self._ask(
                "assign", subject, p.classify_one(subject, dim, attrs, caption), 0
            )
            choices[dim] = answer.data["attribute"] if answer.data else OTHER
            if answer.data is None:
                notes[dim] = f"invalid answer: {answer.problem}"
        return ImageAnswer(choices, notes)

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        dims = {d.name: d.attributes for d in dimensions}
        if self._config.assignment_mode == "per_image_dimension":
            return list(await _all(*(self._assign_reference(subject, dims, c) for c in captions)))
        size = self._config.captions_per_call
        chunks = [captions[i : i + size] for i in range(0, len(captions), size)]
        done = await _all(*(self._assign_chunk(subject, dims, ch) for ch in chunks))
        return [answer for chunk in done for answer in chunk]
