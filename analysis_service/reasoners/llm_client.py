"""Structured JSON answers from any OpenAI-compatible chat endpoint.

Every request asks for `response_format: json_schema` with the exact schema of the answer.
A server that rejects it is asked again with JSON mode, then with plain text parsed
tolerantly; the client remembers what the server accepts. A malformed answer gets one repair
request; an answer that parses but breaks the caller's rules gets one corrective request.
Identical requests reuse the stored answer (see CallLog) and cost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

import httpx

from shared.http import send
from shared.retry import RetryableError, RetryPolicy

MODES = ("json_schema", "json_object", "text")
INVALID = "__invalid__"  # stored in place of an answer that stayed invalid after its repair
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


class LLMError(RuntimeError):
    """The LLM could not be reached or kept failing; the message says why."""


class BudgetExceeded(RuntimeError):
    """The job's token budget is spent."""


def estimate_tokens(text: str) -> int:
    """Documented rule where no tokenizer is available: one token per 4 characters."""
    return max(1, len(text) // 4)


@dataclass
class Answer:
    data: Any  # parsed JSON, or None when no valid answer could be had
    problem: str | None = None  # why data is None or was rejected
    cached: bool = False


@dataclass
class CallRecord:
    stage: str
    subject: str | None
    request_hash: str
    model: str
    mode: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    error: str | None
    response: Any
    raw_text: str | None


class CallLog(Protocol):
    async def lookup(self, request_hash: str) -> Any | None:
        """The accepted answer of an identical earlier request, if any."""
        ...

    async def record(self, call: CallRecord) -> int:
        """Store one HTTP call with its cost; return its id."""
        ...

    async def accept(self, call_id: int, data: Any) -> None:
        """Mark a call's answer valid: identical requests will reuse it."""
        ...

    def check_budget(self, upcoming_tokens: int) -> None:
        """Raise BudgetExceeded when this call would pass the budget."""
        ...


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 120.0
    retries: int = 5
    retry_base_delay_s: float = 1.0
    concurrency: int = 8
    max_tokens: int = 2048


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


def _rejects_format(response: httpx.Response) -> bool:
    """A 400/422 that complains about response_format: the server does not support it."""
    if response.status_code not in (400, 422):
        return False
    text = response.text.lower()
    return any(k in text for k in ("response_format", "json_schema", "json_object", "not support"))


class LLMClient:
    def __init__(
        self,
        config: LLMConfig,
        log: CallLog,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.config = config
        self.mode = MODES[0]
        self._log = log
        self._slots = asyncio.Semaphore(config.concurrency)
        self._retry = RetryPolicy(attempts=config.retries, base_delay=config.retry_base_delay_s)
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=10.0),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _hash(self, messages: list[dict], schema: dict, temperature: float, seed: int) -> str:
        canonical = json.dumps(
            {
                "model": self.config.model,
                "messages": messages,
                "schema": schema,
                "temperature": temperature,
                "seed": seed,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    async def _attempt(self, body: dict[str, Any], record: Callable[..., Any]) -> httpx.Response:
        """One HTTP attempt; a transient failure is recorded, then retried by the policy."""
        started = time.perf_counter()
        try:
            return await send(self._http, "POST", "/chat/completions", json=body)
        except RetryableError as exc:
            await record(error=str(exc), latency_ms=int((time.perf_counter() - started) * 1000))
            raise

    async def _complete(
        self,
        stage: str,
        subject: str | None,
        messages: list[dict],
        schema: dict,
        name: str,
        temperature: float,
        seed: int,
        request_hash: str,
    ) -> tuple[str, str, int]:
        """One chat completion; returns (text, mode, call id). Falls back through the modes."""
        while True:
            mode = self.mode
            body: dict[str, Any] = {
                "model": self.config.model,
                "messages": messages,
                "temperature": temperature,
                "seed": seed,
                "max_tokens": self.config.max_tokens,
            }
            if (fmt := _response_format(mode, name, schema)) is not None:
                body["response_format"] = fmt

            async def record(mode: str = mode, **fields: Any) -> int:
                call = CallRecord(
                    stage,
                    subject,
                    request_hash,
                    self.config.model,
                    mode,
                    None,
                    None,
                    0,
                    None,
                    None,
                    None,
                )
                return await self._log.record(replace(call, **fields))

            self._log.check_budget(sum(estimate_tokens(m["content"]) for m in messages))
            started = time.perf_counter()
            try:
                response = await self._retry.run(partial(self._attempt, body, record))
            except RetryableError as exc:
                raise LLMError(
                    f"LLM unavailable after {self._retry.attempts} attempts: {exc}"
                ) from exc
            latency = int((time.perf_counter() - started) * 1000)
            if _rejects_format(response) and mode != MODES[-1]:
                self.mode = MODES[MODES.index(mode) + 1]
                await record(error=f"{mode} rejected: {response.text[:200]}", latency_ms=latency)
                continue
            if response.status_code >= 400:
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                await record(error=error, latency_ms=latency)
                raise LLMError(error)
            try:
                payload = response.json()
                text = payload["choices"][0]["message"]["content"]
                usage = payload.get("usage") or {}
            except (ValueError, KeyError, IndexError, TypeError):
                error = "malformed chat completion (no choices[0].message.content)"
                await record(error=error, latency_ms=latency)
                raise LLMError(error) from None
            call_id = await record(
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                latency_ms=latency,
                raw_text=text,
            )
            return str(text or ""), mode, call_id

    async def ask(
        self,
        *,
        stage: str,
        subject: str | None,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        name: str,
        seed: int,
        temperature: float = 0.0,
        validate: Callable[[Any], str | None] = lambda data: None,
    ) -> Answer:
        """A JSON answer that matches the schema and passes validate, or Answer(None, why).

        The whole exchange (cache lookup, calls, records) holds one of `concurrency` slots,
        which also bounds the database sessions the call log uses."""
        async with self._slots:
            request_hash = self._hash(messages, schema, temperature, seed)
            stored = await self._log.lookup(request_hash)
            if isinstance(stored, dict) and INVALID in stored:
                return Answer(None, problem=str(stored[INVALID]), cached=True)
            if stored is not None and validate(stored) is None:
                return Answer(stored, cached=True)
            conversation = list(messages)
            problem = None
            for _ in range(2):  # the answer, then one repair or correction
                text, _, call_id = await self._complete(
                    stage, subject, conversation, schema, name, temperature, seed, request_hash
                )
                try:
                    data = extract_json(text)
                except ValueError as exc:
                    problem = f"not valid JSON: {exc}"
                    data = None
                if data is not None:
                    problem = validate(data)
                    if problem is None:
                        await self._log.accept(call_id, data)
                        return Answer(data)
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
