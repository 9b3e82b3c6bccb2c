"""A fake of vllm.v1.engine.async_llm.AsyncLLM (vLLM 0.33): same call shapes, no GPU.

It simulates continuous batching: every `step_s` all running sequences (at most
`max_num_seqs`) advance one token; waiting requests join at step boundaries. A caption takes
`caption_tokens` steps, so throughput is about max_num_seqs / (caption_tokens * step_s).
Token counting rule: a caption's tokens are its words; the prompt is its words plus 576 image
tokens (LLaVA-1.5 at 336 px).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

IMAGE_TOKENS = 576


class EngineDeadError(Exception):
    """Named like vllm.v1.engine.exceptions.EngineDeadError, which callers match by name."""


class QueueOverflowError(Exception):
    """Like vllm.exceptions.QueueOverflowError: carries the HTTP status vLLM's server sends."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE


@dataclass
class FakeCompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class FakeRequestOutput:
    request_id: str
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[FakeCompletionOutput]
    finished: bool = True


@dataclass
class _Sequence:
    request_id: str
    needed: int
    done: asyncio.Future
    produced: int = 0


class FakeOutputKind(enum.Enum):
    """Same members as vllm.sampling_params.RequestOutputKind."""

    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class FakeSamplingParams:
    """Stands in for vllm.SamplingParams; keeps exactly the keyword arguments it was given."""

    kwargs: dict[str, Any] = field(default_factory=dict)


def caption_for(image: Any, tokens: int) -> str:
    r, g, b = image.resize((1, 1)).getpixel((0, 0))
    words = f"A photo of size {image.width}x{image.height} whose mean colour is {r} {g} {b}".split()
    filler = ["with", "more", "detail"] * tokens
    return " ".join((words + filler)[:tokens])


class FakeAsyncLLM:
    def __init__(self, step_s: float = 0.0, max_num_seqs: int = 128, caption_tokens: int = 24):
        self.step_s = step_s
        self.max_num_seqs = max_num_seqs
        self.caption_tokens = caption_tokens
        self.calls: list[tuple[dict, Any, str]] = []
        self.aborted: list[str] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.errored = False
        self.shut_down = False
        #: Raised by every generate call (vLLM's admission and validation errors).
        self.refusal: Exception | None = None
        #: Ends every request with this finish reason and no tokens ("abort", "error").
        self.end_with: str | None = None
        self._waiting: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._scheduler: asyncio.Task | None = None

    def _validate(self, prompt: Any) -> None:
        if not isinstance(prompt, dict) or not isinstance(prompt.get("prompt"), str):
            raise ValueError("prompt must be a dict with a 'prompt' string")
        if prompt["prompt"].count("<image>") != 1:
            raise ValueError("exactly one <image> placeholder per image is required")
        if "image" not in (prompt.get("multi_modal_data") or {}):
            raise ValueError("multi_modal_data.image is missing")

    async def _schedule(self) -> None:
        while self._waiting or self._running:
            room = self.max_num_seqs - len(self._running)
            self._running += self._waiting[:room]
            del self._waiting[:room]
            await asyncio.sleep(self.step_s)
            for seq in self._running:
                seq.produced += 1
            for seq in [s for s in self._running if s.produced >= s.needed]:
                self._running.remove(seq)
                if not seq.done.done():
                    seq.done.set_result(None)
        self._scheduler = None

    async def generate(
        self, prompt: Any, sampling_params: Any, request_id: str
    ) -> AsyncIterator[FakeRequestOutput]:
        if self.errored:
            raise EngineDeadError("engine core died")
        if self.refusal is not None:
            raise self.refusal
        self._validate(prompt)
        self.calls.append((prompt, sampling_params, request_id))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        seq = _Sequence(request_id, self.caption_tokens, asyncio.get_running_loop().create_future())
        self._waiting.append(seq)
        if self._scheduler is None:
            self._scheduler = asyncio.create_task(self._schedule())
        try:
            await seq.done
        except asyncio.CancelledError:
            self.aborted.append(request_id)  # the real engine aborts on cancellation too
            self._drop(seq)
            raise
        finally:
            self.in_flight -= 1
        text = caption_for(prompt["multi_modal_data"]["image"], self.caption_tokens)
        max_tokens = getattr(sampling_params, "kwargs", {}).get("max_tokens")
        words = [] if self.end_with else text.split()[: max_tokens or None]
        reason = "length" if max_tokens and len(text.split()) > max_tokens else "stop"
        yield FakeRequestOutput(
            request_id=request_id,
            prompt=prompt["prompt"],
            prompt_token_ids=list(range(len(prompt["prompt"].split()) + IMAGE_TOKENS)),
            outputs=[
                FakeCompletionOutput(
                    0, " " + " ".join(words) + " ", list(range(len(words))), self.end_with or reason
                )
            ],
        )

    def _drop(self, seq: _Sequence) -> None:
        for queue in (self._waiting, self._running):
            if seq in queue:
                queue.remove(seq)

    async def abort(self, request_id: str) -> None:
        if request_id not in self.aborted:
            self.aborted.append(request_id)

    async def check_health(self) -> None:
        if self.errored:
            raise EngineDeadError("engine core died")

    def die(self) -> None:
        """The engine core process dies: pending and future requests fail."""
        self.errored = True
        for seq in self._waiting + self._running:
            if not seq.done.done():
                seq.done.set_exception(EngineDeadError("engine core died"))
        self._waiting.clear()
        self._running.clear()

    def shutdown(self) -> None:
        self.shut_down = True
