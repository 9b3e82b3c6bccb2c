"""Structured JSON answers from any OpenAI-compatible chat endpoint.

Every request asks for `response_format: json_schema` with the schema generated from the
answer's model. A server that rejects it is asked again with JSON mode, then with plain text
parsed tolerantly; the client remembers what the server accepts. A malformed answer gets one
repair request; an answer the model does not validate gets one corrective request, which
quotes the validation errors. Identical requests reuse the stored answer (see CallLog) and
cost nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from analysis_service.reasoners.budget import TokenBudget
from analysis_service.reasoners.estimate import tokens_for_chars
from analysis_service.reasoners.llm_answers import LLMAnswer, problem_of
from shared.hashing import canonical_sha256
from shared.openai_chat import (
    ChatClient,
    ChatCompletion,
    ChatError,
    ChatRefused,
    ChatUnavailable,
    ms_since,
    strict_schema,
)
from shared.retry import RetryableError

MODES = ("json_schema", "json_object", "text")
INVALID = "__invalid__"  # stored in place of an answer that stayed invalid after its repair
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
M = TypeVar("M", bound=LLMAnswer)


class LLMError(RuntimeError):
    """The LLM could not be reached or kept failing; the message says why."""


def estimate_tokens(text: str) -> int:
    """Tokens a prompt will cost, before the server counts them (see estimate.tokens_for_chars)."""
    return int(tokens_for_chars(len(text)))


@dataclass
class Answer(Generic[M]):
    data: M | None  # the validated answer, or None when no valid answer could be had
    problem: str | None = None  # why data is None
    cached: bool = False


@dataclass
class CallRecord:
    step: str
    subject: str | None
    request_hash: str
    model: str
    mode: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int = 0
    error: str | None = None
    response: Any = None
    raw_text: str | None = None


class CallLog(Protocol):
    #: What the job may still spend; every call reserves its cost here before it starts.
    budget: TokenBudget

    async def lookup(self, request_hash: str) -> Any | None:
        """The accepted answer of an identical earlier request, if any."""
        ...

    async def record(self, call: CallRecord) -> int:
        """Store one HTTP call with its cost; return its id. (The cost is counted against the
        budget by the client, which settles the call's reservation.)"""
        ...

    async def accept(self, call_id: int, data: Any) -> None:
        """Mark a call's answer valid: identical requests will reuse it."""
        ...


def extract_json(text: str) -> Any:
    """Plain JSON, else tolerant parsing: code fences, prose around the JSON, trailing garbage."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        candidate = candidate.strip()
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        starts = [i for i in (candidate.find("{"), candidate.find("[")) if i >= 0]
        if not starts:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(candidate[min(starts) :])
            return value
        except ValueError:
            continue
    raise ValueError("no JSON value found in the answer")


def _response_format(mode: str, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _rejects_format(refused: ChatRefused) -> bool:
    """A 400/422 that complains about response_format: the server does not support it."""
    if refused.status_code not in (400, 422):
        return False
    text = refused.text.lower()
    return any(k in text for k in ("response_format", "json_schema", "json_object", "not support"))


def _cost(answer: ChatCompletion, estimated_prompt: int) -> int:
    """Prompt and completion tokens of an answer, from the API's usage; estimated where the
    server did not say."""
    prompt = answer.prompt_tokens if answer.prompt_tokens is not None else estimated_prompt
    completion = answer.completion_tokens
    if completion is None:
        completion = estimate_tokens(answer.text)
    return prompt + completion


def _validated(answer: type[M], data: Any) -> tuple[M | None, str | None]:
    try:
        return answer.model_validate(data), None
    except ValidationError as exc:
        return None, problem_of(exc)


class LLMClient:
    """`concurrency` bounds the requests in flight; `max_tokens` bounds each answer."""

    def __init__(self, chat: ChatClient, log: CallLog, *, concurrency: int, max_tokens: int):
        self.chat = chat
        self.model = chat.endpoint.model
        self.mode = MODES[0]
        self._log = log
        self._slots = asyncio.Semaphore(concurrency)
        self.max_tokens = max_tokens

    def _hash(self, messages: list[dict], schema: dict, temperature: float, seed: int) -> str:
        return canonical_sha256(
            {
                "model": self.model,
                "messages": messages,
                "schema": schema,
                "temperature": temperature,
                "seed": seed,
            }
        )

    def _params(
        self, mode: str, name: str, schema: dict, temperature: float, seed: int
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": temperature,
            "seed": seed,
            "max_tokens": self.max_tokens,
        }
        if (fmt := _response_format(mode, name, schema)) is not None:
            params["response_format"] = fmt
        return params

    async def _complete(
        self,
        call: CallRecord,
        messages: list[dict],
        schema: dict,
        name: str,
        temperature: float,
        seed: int,
    ) -> tuple[str, int]:
        """One chat completion; returns (text, call id). Falls back through the modes."""
        while True:
            params = self._params(self.mode, name, schema, temperature, seed)
            done = await self._complete_in_mode(replace(call, mode=self.mode), messages, params)
            if done is not None:
                return done

    async def _complete_in_mode(
        self, attempt: CallRecord, messages: list[dict], params: dict[str, Any]
    ) -> tuple[str, int] | None:
        """One completion in attempt.mode; None when the server rejects that mode (the client
        then moves to the next). Every HTTP attempt is recorded, the transient failures too."""

        async def record(**fields: Any) -> int:
            return await self._log.record(replace(attempt, **fields))

        async def transient(exc: RetryableError, latency_ms: int) -> None:
            await record(error=str(exc), latency_ms=latency_ms)

        prompt = sum(estimate_tokens(m["content"]) for m in messages)
        # The most this call may cost, held until it ends (see budget.py); a call that does
        # not fit raises BudgetExceeded here, before anything is sent.
        with self._log.budget.reserve(prompt + self.max_tokens) as held:
            started = time.perf_counter()
            try:
                answer = await self.chat.complete(messages, on_transient=transient, **params)
            except ChatUnavailable as exc:  # its attempts are recorded already
                raise LLMError(f"LLM {exc}") from exc
            except ChatError as exc:
                latency, mode = ms_since(started), attempt.mode
                if isinstance(exc, ChatRefused) and _rejects_format(exc) and mode != MODES[-1]:
                    self.mode = MODES[MODES.index(mode) + 1]
                    await record(error=f"{mode} rejected: {exc.text[:200]}", latency_ms=latency)
                    return None
                await record(error=str(exc), latency_ms=latency)
                raise LLMError(str(exc)) from exc
            held.settle(_cost(answer, prompt))
        call_id = await record(
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_ms=ms_since(started),
            # What is stored of the answer: a server may echo the request's key into it.
            raw_text=self.chat.redact(answer.text),
        )
        return answer.text, call_id

    async def ask(
        self,
        *,
        step: str,
        subject: str | None,
        messages: list[dict[str, str]],
        answer: type[M],
        seed: int,
        temperature: float = 0.0,
    ) -> Answer[M]:
        """An answer the `answer` model validates, or Answer(None, why).

        The whole exchange (cache lookup, calls, records) holds one of `concurrency` slots,
        which also bounds the database sessions the call log uses."""
        schema = strict_schema(answer)
        async with self._slots:
            request_hash = self._hash(messages, schema, temperature, seed)
            stored = await self._log.lookup(request_hash)
            if isinstance(stored, dict) and INVALID in stored:
                return Answer(None, problem=str(stored[INVALID]), cached=True)
            if stored is not None and (cached := _validated(answer, stored)[0]) is not None:
                return Answer(cached, cached=True)
            call = CallRecord(step, subject, request_hash, self.model, self.mode)
            return await self._converse(call, messages, answer, schema, temperature, seed)

    async def _converse(
        self,
        call: CallRecord,
        messages: list[dict[str, str]],
        answer: type[M],
        schema: dict,
        temperature: float,
        seed: int,
    ) -> Answer[M]:
        """The answer, then one repair or correction that quotes what was wrong."""
        conversation, problem = list(messages), None
        for _ in range(2):
            text, call_id = await self._complete(
                call, conversation, schema, answer.schema_name, temperature, seed
            )
            try:
                data = extract_json(text)
            except ValueError as exc:
                problem = f"not valid JSON: {exc}"
            else:
                parsed, problem = _validated(answer, data)
                if parsed is not None:
                    await self._log.accept(call_id, data)
                    return Answer(parsed)
            conversation = [
                *messages,
                {"role": "assistant", "content": text[:4000]},
                {
                    "role": "user",
                    "content": f"That answer is not acceptable: {problem}. Reply again "
                    "with only the JSON object, following the schema and the allowed "
                    "values.",
                },
            ]
        # Remember the failure too: the same request would get the same answers again.
        await self._log.accept(call_id, {INVALID: problem})
        return Answer(None, problem=problem)
