"""Step 4 of SSD-LLM through the LLM: every caption gets one attribute per dimension, many
captions a call with every dimension answered at once by the numbers of the values (or, as
the reference code did, one call per image and dimension by name)."""

from __future__ import annotations

from typing import TypeVar

from analysis_service.reasoners import llm_prompts as p
from analysis_service.reasoners.base import DimensionProposal, ImageAnswer
from analysis_service.reasoners.llm_answers import LLMAnswer
from analysis_service.reasoners.llm_client import Answer, LLMClient
from analysis_service.reasoners.llm_prompts import Step
from analysis_service.settings import DiscoverySteps
from shared.concurrency import run_all

A = TypeVar("A", bound=LLMAnswer)


class Assigner:
    def __init__(self, client: LLMClient, steps: DiscoverySteps):
        self._client = client
        self._steps = steps

    async def _ask(self, subject: str, ask: p.Ask[A]) -> Answer[A]:
        return await self._client.ask(
            step=Step.ASSIGNMENT,
            subject=subject,
            messages=ask.messages,
            answer=ask.answer,
            seed=0,
        )

    async def _assign_chunk(
        self, subject: str, dims: dict[str, list[str]], captions: list[str], retry: bool = True
    ) -> list[ImageAnswer]:
        """Answers for a chunk; captions given a value outside the lists are asked once more
        on their own, and what is still outside becomes 'other' with the reason."""
        ask = p.assign_batch(subject, dims, captions, again=not retry)
        answer = await self._ask(subject, ask)
        if answer.data is None:
            return [ImageAnswer.failed(dims, answer.problem) for _ in captions]
        numbers = {d: p.value_numbers(attrs) for d, attrs in dims.items()}
        # A number outside its dimension's list stays a number: ImageAnswer.of makes it OTHER
        # with a note that quotes it.
        by_id = {
            a.id: {d: numbers[d].get(n, n) for d, n in zip(dims, a.values, strict=True)}
            for a in answer.data.answers
        }
        results = [ImageAnswer.of(dims, by_id[i]) for i in range(1, len(captions) + 1)]
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
        result = ImageAnswer()
        for dim, attrs in dims.items():
            ask = p.classify_one(subject, dim, attrs, caption)
            answer = await self._ask(subject, ask)
            if answer.data is None:
                result.unanswered(dim, answer.problem)
            else:
                result.choose(dim, answer.data.attribute, attrs)
        return result

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        dims = {d.name: d.attributes for d in dimensions}
        if self._steps.assignment_mode == "per_image_dimension":
            return await run_all(*(self._assign_reference(subject, dims, c) for c in captions))
        size = p.captions_per_call(
            self._steps.assign_captions_per_call, len(dims), self._client.max_tokens
        )
        chunks = [captions[i : i + size] for i in range(0, len(captions), size)]
        done = await run_all(*(self._assign_chunk(subject, dims, ch) for ch in chunks))
        return [answer for chunk in done for answer in chunk]
