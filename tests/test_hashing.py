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
        "c8212c0d8d82197937b1dae8c7cd8686f6a89800402ada90bb1bb99efb29b221",
    ),
    "merge dimensions": (
        p.merge_dimensions("dog", ["background", "pose", "time of day"]),
        "5b63dfb49c71ae672fa834bf69e8561b1a4b27714ec0150786a363d5a545c626",
    ),
    "attributes of all dimensions": (
        p.suggest_attributes_all("dog", list(DIMS), CAPTIONS, 6),
        "c69e0057dc6b91f8252568809c542fe8dff87074ce2ee6b3bbefdb97a7d9ea73",
    ),
    "attribute merge": (
        p.merge_attributes("dog", "background", ATTRS, None, 8),
        "d589f5223d4a9113c2d2376f1d09a4a7112569a53a6a1b77033a6eecefbbcd46",
    ),
    "attribute merge, exact count": (
        p.merge_attributes("dog", "background", ATTRS, 3, 8),
        "4d77bb3cd002c51e1c338047595a0909b959c8d1a49743e8e00eb3978de1eee7",
    ),
    "classify all": (
        p.classify_all("dog", DIMS, CAPTIONS[0]),
        "4faa7e3237fdcc31c6aad3eed8a6637645bbb9bf96cea183ac158a704d6ef3b0",
    ),
    "classify one": (
        p.classify_one("dog", "background", ATTRS, CAPTIONS[0]),
        "11f23ab2fb729850bf66ad38ce9d1fd6cb8eec537df2aee989838dcb2086b7fc",
    ),
    "diagnosis": (
        p.diagnose("dog", "background", ATTRS, CAPTIONS[0], ["grass", "other"]),
        "43f148bd8a84b310a09f4b25717eacfde6a110eaec95a15e565dbe4eea34dc15",
    ),
    "validation": (
        p.validate_new("dog", "background", ATTRS, "snow"),
        "b04ceb14b22575dde9ac2732934c5f14b7795935cb8dc0faf4ef5a79f90f8c10",
    ),
    "batched assignment": (
        p.assign_batch("dog", DIMS, CAPTIONS),
        "13b574817be04c4cb3ef434738d04ed2d74676591aeecba97098a7ce0521cf64",
    ),
    "batched assignment, asked again": (
        p.assign_batch("dog", DIMS, CAPTIONS, again=True),
        "99587dff14089d9e5203461576ddda3846b14abd14158f64ec7bc066d65c90d1",
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
