"""The keys stored data is found by: captions by caption_key, cached LLM answers by the request
hash. The values below were computed by the code that stored today's data; a change to the
hashing, a prompt or a generated answer schema that moves them orphans that data."""

from __future__ import annotations

from typing import Any

import pytest

from analysis_service.reasoners import llm_prompts as p
from analysis_service.reasoners.budget import TokenBudget
from analysis_service.reasoners.llm_client import INVALID, CallRecord, LLMClient
from shared.caption_contract import EngineInfo
from shared.hashing import canonical_sha256
from shared.openai_chat import ChatClient, ChatEndpoint
from shared.retry import RetryPolicy


def test_canonical_sha256_ignores_key_order_and_escapes_non_ascii():
    assert canonical_sha256({"b": 1, "a": "é"}) == canonical_sha256({"a": "é", "b": 1})
    # sha256 of '{"a":"\\u00e9","b":1}'
    assert canonical_sha256({"b": 1, "a": "é"}) == (
        "6d9eb45284090145dc16661b06abe01185a16a7dabba07c992a131bffa6b8114"
    )


def test_caption_key_is_unchanged():
    info = EngineInfo(
        engine="vllm",
        model="llava-hf/llava-1.5-7b-hf",
        prompt_version="3f2a",
        prompt="USER: <image>\nDescribe the image. ASSISTANT:",
        params={"temperature": 0.0, "max_tokens": 77, "seed": 0, "short_side": 336, "note": "é"},
    )
    assert info.caption_key() == "96ae88f14df64f00779112d30a15677639d9289e40abefa8a678933ded63ee8e"


CAPTIONS = ["A dog on grass.", "A dog on a sofa, indoors.", "  A puppy at night. "]
DIMS = {"background": ["grass", "sofa"], "time of day": ["day", "night"]}
ATTRS = ["grass", "sofa", "beach"]
REQUESTS: dict[str, tuple[p.Ask[Any], str]] = {
    "suggest dimensions": (
        p.suggest_dimensions("dog", CAPTIONS, 5),
        "af43be78e3e3a154c9c3e9bbf7b555a48d8e337f7e756ce0d98f0ddf0a5eaaae",
    ),
    "merge dimensions": (
        p.merge_dimensions("dog", ["background", "pose", "time of day"]),
        "752d3ef07d739b8bac8c1671035c4732b728ccc1debfd7b28808740f2998d893",
    ),
    "attributes of all dimensions": (
        p.suggest_attributes_all("dog", list(DIMS), CAPTIONS, 6),
        "9b83da2ce6741ac57753d534d8a164cd9ee5196c5bf2a4784c0ec0ea2539c7dc",
    ),
    "attribute merge": (
        p.merge_attributes("dog", "background", ATTRS, None, 8),
        "76552ac3ed8124780fd505f4d34ffadf83ebcd8c23f97c2c376dcb3960a6e6f1",
    ),
    "attribute merge, exact count": (
        p.merge_attributes("dog", "background", ATTRS, 3, 8),
        "0b18b4fe031d0670cf1f8fc0435904f808ca7d2ecad723769ad55a6ce58cd657",
    ),
    "classify all": (
        p.classify_all("dog", DIMS, CAPTIONS[0]),
        "75748ac9a7d29c23625c2e24ed150e3e04e74be0ff1478da1040cb95f673314c",
    ),
    "classify one": (
        p.classify_one("dog", "background", ATTRS, CAPTIONS[0]),
        "c132f56726eb6ce8a38bf7ed7788b456bdca8680d8cb2fb14bb8427cd7cc57f7",
    ),
    "diagnosis": (
        p.diagnose("dog", "background", ATTRS, CAPTIONS[0], ["grass", "other"]),
        "e649cc81484f168a25705c80d52117400fe43e54ff14608a1536d031b895af4d",
    ),
    "validation": (
        p.validate_new("dog", "background", ATTRS, "snow"),
        "87b0b15f28c20aa6551ea6e54642035e97da24e5cff5e84783f97fd6434e7388",
    ),
    "batched assignment": (
        p.assign_batch("dog", DIMS, CAPTIONS),
        "baa102497377b5267136a75e35a37f215ad1d19708c82cdeed2b6b49482542e1",
    ),
    "batched assignment, asked again": (
        p.assign_batch("dog", DIMS, CAPTIONS, again=True),
        "6e9052ed63386ebd41c1b374795274ba9cdf47450eb81e1e65c3c070b248d705",
    ),
}


class LookupsOnly:
    """A call log that answers every lookup with a stored failure: no request is sent."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []
        self.budget = TokenBudget(None)

    async def lookup(self, request_hash: str) -> Any | None:
        self.looked_up.append(request_hash)
        return {INVALID: "stored"}

    async def record(self, call: CallRecord) -> int:
        raise AssertionError("nothing is sent")

    async def accept(self, call_id: int, data: Any) -> None:
        raise AssertionError("nothing is sent")


@pytest.mark.parametrize("kind", REQUESTS)
async def test_llm_request_hashes_are_unchanged(kind: str):
    ask, expected = REQUESTS[kind]
    endpoint = ChatEndpoint("http://unused/v1", "", "m", 1.0, RetryPolicy())
    chat, log = ChatClient(endpoint), LookupsOnly()
    client = LLMClient(chat, log, concurrency=1, max_tokens=100)
    try:
        await client.ask(step="s", subject="dog", messages=ask.messages, answer=ask.answer, seed=7)
    finally:
        await chat.aclose()
    assert log.looked_up == [expected]
