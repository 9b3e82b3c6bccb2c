"""The LLM client against the fake LLM server: structured output, fallbacks, repair,
retries, caching and the token budget."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from analysis_service.reasoners import llm_prompts as p
from analysis_service.reasoners.budget import BudgetExceeded, TokenBudget
from analysis_service.reasoners.llm_client import (
    CallRecord,
    LLMClient,
    LLMError,
    extract_json,
)
from shared.openai_chat import ChatClient, ChatEndpoint
from shared.retry import RetryPolicy
from tests.fakes.chat_server import ChatServer
from tests.fakes.fake_llm import FakeLLM

CAPTIONS = ["A dog sitting on the grass.", "A dog lying on a couch in a room."]


class MemoryCallLog:
    """The CallLog protocol in memory, with a budget."""

    def __init__(self, budget: int | None = None):
        self.calls: list[CallRecord] = []
        self.accepted: dict[str, Any] = {}
        self.budget = TokenBudget(budget)

    async def lookup(self, request_hash: str) -> Any | None:
        return self.accepted.get(request_hash)

    async def record(self, call: CallRecord) -> int:
        self.calls.append(call)
        return len(self.calls) - 1

    async def accept(self, call_id: int, data: Any) -> None:
        self.accepted[self.calls[call_id].request_hash] = data


def client(
    server: FakeLLM, log: MemoryCallLog, retries: int = 3, timeout_s: float = 30.0
) -> LLMClient:
    """timeout_s is long but where a test times a request out: a busy machine can stall
    the fake server's thread for a second or two, which must not cost an extra attempt."""
    endpoint = ChatEndpoint(
        base_url=server.base_url,
        api_key="sk-fake",
        model="fake-model",
        timeout_s=timeout_s,
        retry=RetryPolicy(attempts=retries, base_delay=0.0),
    )
    return LLMClient(ChatClient(endpoint), log, concurrency=4, max_tokens=256)


async def ask(c: LLMClient, ask_: p.Ask, seed: int = 0):  # type: ignore[no-untyped-def]
    return await c.ask(
        step="test", subject="dog", messages=ask_.messages, answer=ask_.answer, seed=seed
    )


async def test_sends_the_exact_json_schema_and_records_usage(llm):
    log = MemoryCallLog()
    c = client(llm, log)
    question = p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0])
    answer = await ask(c, question)
    await c.chat.aclose()
    assert answer.data is not None and answer.data.attribute == "sitting"
    body = llm.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["attribute"]["enum"] == ["sitting", "lying", "other"]
    assert body["temperature"] == 0 and body["model"] == "fake-model"
    assert body["max_tokens"] == 256
    assert llm.headers[0]["authorization"] == "Bearer sk-fake"
    assert log.calls[0].prompt_tokens > 0 and log.calls[0].completion_tokens > 0


async def test_identical_request_is_answered_from_the_log(llm):
    log = MemoryCallLog()
    c = client(llm, log)
    question = p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0])
    first = await ask(c, question)
    second = await ask(c, question)
    await c.chat.aclose()
    assert second.cached and second.data == first.data
    assert len(llm.requests) == 1


async def test_falls_back_to_json_mode_then_text(llm):
    llm.reject_modes = {"json_schema", "json_object"}
    log = MemoryCallLog()
    c = client(llm, log)
    answer = await ask(c, p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[1]))
    assert answer.data is not None and answer.data.attribute == "lying"
    assert c.mode == "text"
    modes = [r.get("response_format", {}).get("type") for r in llm.requests]
    assert modes == ["json_schema", "json_object", None]
    await ask(c, p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0]))
    await c.chat.aclose()
    assert "response_format" not in llm.requests[-1]  # remembered


async def test_malformed_json_gets_one_repair(llm):
    llm.faults = ["badjson"]
    c = client(llm, MemoryCallLog())
    answer = await ask(c, p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0]))
    await c.chat.aclose()
    assert answer.data is not None and answer.data.attribute == "sitting"
    assert len(llm.requests) == 2
    assert "not acceptable" in llm.requests[1]["messages"][-1]["content"]


async def test_answers_outside_the_list_are_corrected_or_refused(llm):
    llm.faults = ["outside"]
    c = client(llm, MemoryCallLog())
    question = p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0])
    corrected = await ask(c, question)
    assert corrected.data is not None and corrected.data.attribute == "sitting"
    assert "'attribute' must be one of" in llm.requests[1]["messages"][-1]["content"]
    llm.faults = ["outside", "outside"]
    refused = await ask(c, question, seed=5)
    await c.chat.aclose()
    assert refused.data is None and "must be one of" in refused.problem


async def test_429_and_500_are_retried_and_an_outage_is_an_error(llm):
    llm.faults = ["429", "500"]
    log = MemoryCallLog()
    c = client(llm, log, retries=3)
    assert (await ask(c, p.classify_one("dog", "pose", ["sitting"], CAPTIONS[0]))).data
    # Every attempt is recorded, the failed ones with their error.
    assert [bool(call.error) for call in log.calls] == [True, True, False]
    assert "HTTP 429" in (log.calls[0].error or "") and {c.step for c in log.calls} == {"test"}
    llm.faults = ["500"] * 5
    with pytest.raises(LLMError, match="unavailable after 3 attempts"):
        await ask(c, p.classify_one("dog", "pose", ["lying"], CAPTIONS[1]))
    await c.chat.aclose()


async def test_timeouts_are_retried(llm):
    llm.faults = ["timeout"]
    llm.timeout_sleep_s = 3.0
    c = client(llm, MemoryCallLog(), timeout_s=1.0)
    assert (await ask(c, p.classify_one("dog", "pose", ["sitting"], CAPTIONS[0]))).data
    await c.chat.aclose()


async def test_budget_stops_before_the_call(llm):
    c = client(llm, MemoryCallLog(budget=10))
    with pytest.raises(BudgetExceeded):
        await ask(c, p.classify_one("dog", "pose", ["sitting"], CAPTIONS[0]))
    await c.chat.aclose()
    assert llm.requests == []


async def test_concurrent_calls_spend_within_the_budget_counting_completions():
    """Many calls at once against a small budget: each reserves its estimated prompt and its
    max_tokens before it starts and settles with the API's usage, so calls in flight cannot
    overshoot together. The fake server counts prompts below the estimate and answers within
    max_tokens, so nothing passes the budget at all (the contract allows one batch)."""
    concurrency, max_tokens, budget = 8, 40, 2500
    long_name = "sitting on a soft red blanket beside the open window in the afternoon sun"
    text = json.dumps({"attribute": long_name})
    with ChatServer(answer=lambda body: text, delay_s=0.05) as server:
        endpoint = ChatEndpoint(server.base_url, "", "fake", 5.0, RetryPolicy(attempts=1))
        log = MemoryCallLog(budget=budget)
        c = LLMClient(ChatClient(endpoint), log, concurrency=concurrency, max_tokens=max_tokens)
        questions = [
            p.classify_one("dog", "pose", [long_name, "lying"], f"Photo {i}: a dog on a rug.")
            for i in range(60)
        ]
        outcomes = await asyncio.gather(*(ask(c, q) for q in questions), return_exceptions=True)
        await c.chat.aclose()
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    answered = [o for o in outcomes if not isinstance(o, BaseException) and o.data is not None]
    assert answered and refused and len(answered) + len(refused) == len(outcomes)
    costs = [server.usage(body, text) for body in server.requests]
    completions = sum(u["completion_tokens"] for u in costs)
    spent = sum(u["prompt_tokens"] + u["completion_tokens"] for u in costs)
    assert completions >= 13 * len(answered)  # every answer's words are counted
    assert log.budget.spent == spent and log.budget.reserved == 0
    one_batch = concurrency * max(u["prompt_tokens"] + u["completion_tokens"] for u in costs)
    assert spent <= budget + one_batch
    assert spent <= budget
    message = str(refused[0])
    assert f"token_budget is {budget}" in message and "reserved by calls in flight" in message


def test_tolerant_parsing():
    assert extract_json('Sure:\n```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('The answer is {"a": [1, 2]} hope it helps') == {"a": [1, 2]}
    with pytest.raises(ValueError):
        extract_json("no json here")


KEY = "sk-live-0123456789abcdef"
PASSWORD = "pa55-w0rd!"


def _echoing(request: httpx.Request) -> httpx.Response:
    """A server whose errors echo the request: its URL, headers and a key parameter."""
    echo = f"url={request.url} headers={dict(request.headers)} api_key={KEY}"
    if len(_echoing.seen) == 0:  # type: ignore[attr-defined]
        _echoing.seen.append(1)  # type: ignore[attr-defined]
        raise httpx.ConnectError(f"cannot reach http://alice:{PASSWORD}@llm.test/v1 ({KEY})")
    return httpx.Response(500, text=f"internal error: {echo}")


def _keyed_client(
    base_url: str, handler: Callable[[httpx.Request], httpx.Response], attempts: int
) -> tuple[LLMClient, MemoryCallLog]:
    """A client sending KEY to base_url, answered by handler, and the log it records to."""
    endpoint = ChatEndpoint(
        base_url=base_url,
        api_key=KEY,
        model="m",
        timeout_s=2.0,
        retry=RetryPolicy(attempts=attempts, base_delay=0.0),
    )
    log = MemoryCallLog()
    chat = ChatClient(endpoint, transport=httpx.MockTransport(handler))
    return LLMClient(chat, log, concurrency=1, max_tokens=16), log


async def test_stored_llm_errors_hold_no_key_password_or_credentials():
    """Every recorded attempt, the job's error and raw text: no secret of the endpoint, even
    when the server echoes the request's Authorization header or URL in its error body."""
    _echoing.seen = []  # type: ignore[attr-defined]
    c, log = _keyed_client(f"http://alice:{PASSWORD}@llm.test/v1", _echoing, attempts=3)
    question = p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0])
    with pytest.raises(LLMError) as failed:
        await ask(c, question)
    await c.chat.aclose()
    stored = [call.error or "" for call in log.calls] + [str(failed.value)]
    assert len(log.calls) == 3 and all(stored)
    assert any("ConnectError" in e for e in stored) and any("HTTP 500" in e for e in stored)
    for text in stored:
        assert KEY not in text and PASSWORD not in text and "alice:" not in text, text
        assert "Bearer sk" not in text.replace("Bearer [redacted]", ""), text


async def test_a_key_echoed_in_an_answer_is_not_stored():
    def answering(request: httpx.Request) -> httpx.Response:
        text = f'{{"attribute": "sitting"}} (your key was {KEY})'
        return httpx.Response(
            200, json={"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
        )

    c, log = _keyed_client("http://llm.test/v1", answering, attempts=1)
    answer = await ask(c, p.classify_one("dog", "pose", ["sitting", "lying"], CAPTIONS[0]))
    await c.chat.aclose()
    assert answer.data is not None and answer.data.attribute == "sitting"
    assert log.calls[0].raw_text and KEY not in log.calls[0].raw_text
