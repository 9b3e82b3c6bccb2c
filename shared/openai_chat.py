"""The one client of the OpenAI-compatible chat-completions protocol (`POST /chat/completions`),
used by the caption service's `openai` engine and by the LLM reasoner.

It owns the HTTP client (base URL, Bearer key, timeout), sends through `shared.http.send` under
the endpoint's retry policy, and reads an answer into one `ChatCompletion`. Whatever else goes
wrong is raised as one of three errors, so that each caller decides what it means for it: an
endpoint that stayed down (`ChatUnavailable`), a request it refused (`ChatRefused`), an answer
that is not a chat completion (`MalformedCompletion`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from pydantic import BaseModel

from shared.http import redact, send, tls_context, url_secrets
from shared.retry import RetryableError, RetryPolicy

#: Called after every transient failure (also the last one), with the attempt's latency in ms.
OnTransient = Callable[[RetryableError, int], Awaitable[None]]


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to reach one endpoint; the settings build it (no defaults here)."""

    base_url: str
    api_key: str
    model: str
    timeout_s: float
    retry: RetryPolicy


@dataclass(frozen=True)
class ChatCompletion:
    text: str  # the content of choices[0].message; empty when the server sent null
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


class ChatError(RuntimeError):
    """A chat completion that could not be had; the message says why."""


class ChatUnavailable(ChatError):
    """The endpoint kept failing transiently (timeouts, 429, 5xx) until attempts ran out."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ChatRefused(ChatError):
    """A status of 400 or above that is not worth another attempt."""

    def __init__(self, status_code: int, text: str):
        super().__init__(f"HTTP {status_code}: {text[:300]}")
        self.status_code = status_code
        self.text = text


class MalformedCompletion(ChatError):
    """A 2xx answer that is not a chat completion."""


def ms_since(started: float) -> int:
    """Milliseconds since `started`, a time.perf_counter() reading."""
    return int((time.perf_counter() - started) * 1000)


def parse_completion(payload: Any) -> ChatCompletion:
    """choices[0].message.content, finish_reason and usage of a decoded answer."""
    try:
        choice = payload["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedCompletion(
            "malformed chat completion (no choices[0].message.content)"
        ) from None
    if content is not None and not isinstance(content, str):
        raise MalformedCompletion("malformed chat completion (content is not text)")
    usage = payload.get("usage") or {}
    return ChatCompletion(
        text=content or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
    )


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema in the shape strict structured output accepts everywhere:
    definitions inlined (no `$ref`), no titles, a nullable type written `"type": [t, "null"]`.
    `additionalProperties: false` and every property required come from the model itself
    (extra='forbid', no defaults)."""
    schema = model.model_json_schema()
    return _inlined(schema, schema.get("$defs", {}))


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inlined(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _inlined(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    match node.get("anyOf"):
        case [{"type": str() as kind, **rest}, {"type": "null"}] if set(node) <= {"anyOf", "title"}:
            return _inlined({**rest, "type": [kind, "null"]}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "properties":  # keys here are property names, not keywords
            out[key] = {name: _inlined(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _inlined(value, defs)
    return out


class ChatClient:
    def __init__(self, endpoint: ChatEndpoint, transport: httpx.AsyncBaseTransport | None = None):
        self.endpoint = endpoint
        key = endpoint.api_key
        self._secrets = [s for s in (key, *url_secrets(endpoint.base_url)) if s]
        self._http = httpx.AsyncClient(
            base_url=endpoint.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(endpoint.timeout_s, connect=10.0),
            transport=transport,
            verify=tls_context(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def redact(self, text: str) -> str:
        """`text` without this endpoint's key and URL password, or anything else that looks
        like credentials: every error message this client raises has been through it, and
        what callers store of a server's answer should be too (a server may echo a key)."""
        return redact(text, self._secrets)

    async def _attempt(
        self, body: dict[str, Any], on_transient: OnTransient | None
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            return await send(self._http, "POST", "/chat/completions", json=body)
        except RetryableError as exc:
            # A transport error may name a URL with its credentials; an error body may
            # echo the request's key.
            safe = RetryableError(self.redact(str(exc)), exc.retry_after)
            if on_transient is not None:
                await on_transient(safe, ms_since(started))
            raise safe from None

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        on_transient: OnTransient | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """One completion of `messages` by the endpoint's model; `params` go into the body
        as they are (temperature, seed, max_tokens, response_format)."""
        body = {"model": self.endpoint.model, "messages": messages, **params}
        retry = self.endpoint.retry
        try:
            response = await retry.run(partial(self._attempt, body, on_transient))
        except RetryableError as exc:
            raise ChatUnavailable(
                f"unavailable after {retry.attempts} attempts: {exc}", exc.retry_after
            ) from exc
        if response.status_code >= 400:
            raise ChatRefused(response.status_code, self.redact(response.text))
        try:
            payload = response.json()
        except ValueError:
            raise MalformedCompletion("malformed chat completion (not JSON)") from None
        return parse_completion(payload)
