"""The one chat-completions client: request shape, parsing, retries and its three errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from shared.openai_chat import (
    ChatClient,
    ChatEndpoint,
    ChatRefused,
    ChatUnavailable,
    MalformedCompletion,
    strict_schema,
)
from shared.retry import RetryableError, RetryPolicy
from tests.fakes.chat_server import ChatServer

MESSAGES = [{"role": "user", "content": "Describe a dog."}]


@pytest.fixture
def server():
    with ChatServer() as chat:
        yield chat


def endpoint(base_url: str, attempts: int = 3) -> ChatEndpoint:
    return ChatEndpoint(
        base_url=base_url + "/",
        api_key="sk-test",
        model="m1",
        timeout_s=30.0,  # no test times out here: a busy machine must not cost an attempt
        retry=RetryPolicy(attempts=attempts, base_delay=0.0),
    )


def answering(payload: Any, status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(payload, bytes):
            return httpx.Response(status, content=payload)
        return httpx.Response(status, json=payload)

    return httpx.MockTransport(handle)


async def test_request_shape_and_parsed_completion(server):
    chat = ChatClient(endpoint(server.base_url))
    answer = await chat.complete(MESSAGES, temperature=0, seed=3, max_tokens=50)
    await chat.aclose()
    assert answer.text == "A photo of a dog on the grass."
    assert answer.finish_reason == "stop"
    assert answer.completion_tokens == 8 and answer.prompt_tokens == 3
    body = server.requests[0]
    assert body == {
        "model": "m1",
        "messages": MESSAGES,
        "temperature": 0,
        "seed": 3,
        "max_tokens": 50,
    }
    assert server.headers[0]["authorization"] == "Bearer sk-test"


async def test_429_and_500_are_retried_and_each_failure_is_reported(server):
    server.faults = ["429", "500"]
    seen: list[tuple[str, float | None]] = []

    async def transient(exc: RetryableError, latency_ms: int) -> None:
        assert latency_ms >= 0
        seen.append((str(exc), exc.retry_after))

    chat = ChatClient(endpoint(server.base_url))
    answer = await chat.complete(MESSAGES, on_transient=transient)
    await chat.aclose()
    assert answer.text and len(server.requests) == 3
    assert "HTTP 429" in seen[0][0] and seen[0][1] == 0.0
    assert "HTTP 500" in seen[1][0] and seen[1][1] is None


async def test_endpoint_that_stays_down_is_unavailable_with_its_retry_after(server):
    server.faults = ["429"] * 3
    server.retry_after = "7"
    chat = ChatClient(endpoint(server.base_url, attempts=1))
    with pytest.raises(ChatUnavailable, match="unavailable after 1 attempts") as caught:
        await chat.complete(MESSAGES)
    await chat.aclose()
    assert caught.value.retry_after == 7.0


async def test_a_refusal_is_not_retried(server):
    server.faults = ["400"]
    chat = ChatClient(endpoint(server.base_url))
    with pytest.raises(ChatRefused) as caught:
        await chat.complete(MESSAGES)
    await chat.aclose()
    assert caught.value.status_code == 400 and "invalid image" in caught.value.text
    assert str(caught.value).startswith("HTTP 400: ") and len(server.requests) == 1


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"choices": []}, "no choices"),
        ({"choices": [{"message": {}}]}, "no choices"),
        ({"error": "x"}, "no choices"),
        ({"choices": [{"message": {"content": ["not", "text"]}}]}, "not text"),
        (b"<html>gateway</html>", "not JSON"),
    ],
)
async def test_malformed_answers(payload, why):
    chat = ChatClient(endpoint("http://chat.test"), transport=answering(payload))
    with pytest.raises(MalformedCompletion, match=why):
        await chat.complete(MESSAGES)
    await chat.aclose()


async def test_null_content_is_empty_text_and_usage_may_be_missing():
    payload = {"choices": [{"message": {"content": None}, "finish_reason": "length"}]}
    chat = ChatClient(endpoint("http://chat.test"), transport=answering(payload))
    answer = await chat.complete(MESSAGES)
    await chat.aclose()
    assert answer.text == "" and answer.finish_reason == "length"
    assert answer.prompt_tokens is None and answer.completion_tokens is None


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str  # a property named like the keyword stays
    note: str | None


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Inner]


def test_strict_schema_inlines_definitions_and_drops_titles():
    schema = strict_schema(Outer)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text and '"Outer"' not in text
    inner = schema["properties"]["items"]["items"]
    assert inner["additionalProperties"] is False
    assert set(inner["properties"]) == {"title", "note"} == set(inner["required"])
    assert inner["properties"]["note"] == {"type": ["string", "null"]}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("HTTP 401: Incorrect API key provided: sk-known-secret", "HTTP 401: Incorrect API key"),
        ("ConnectError: http://bob:hunter2@llm.test/v1/chat", "http://[redacted]@llm.test/v1"),
        ("echo: authorization: Bearer sk-other.key-99", "Bearer [redacted]"),
        ("echo: authorization: Basic Ym9iOmh1bnRlcjI=", "Basic [redacted]"),
        ('{"api_key": "abc123", "n": 1}', '"api_key": "[redacted]"'),
        ("/v1/chat?api-key=abc123&x=1", "api-key=[redacted]&x=1"),
    ],
)
def test_redact_leaves_no_credentials(text: str, kept: str):
    from shared.http import redact

    out = redact(text, ["sk-known-secret"])
    assert kept in out
    for secret in ("sk-known-secret", "hunter2", "sk-other.key-99", "Ym9iOmh1bnRlcjI=", "abc123"):
        assert secret not in out
    assert redact("a plain message about a token and a key", ["sk-known-secret"]) == (
        "a plain message about a token and a key"
    )
