"""Batched assignment (reasoners/llm_assign.py) against the fake LLM: captions answered by the
numbers of their values, and batches no larger than an answer that fits LLM_MAX_TOKENS."""

from __future__ import annotations

import json

from analysis_service.reasoners.base import OTHER, DimensionProposal
from analysis_service.reasoners.llm_assign import Assigner
from analysis_service.reasoners.llm_prompts import captions_per_call
from analysis_service.settings import DiscoverySteps
from tests.fakes.fake_llm import FakeLLM
from tests.fakes.vocabulary import VOCABULARY
from tests.test_llm_client import MemoryCallLog, client

FACETS = {f.name: f for f in VOCABULARY}
POSES = ["standing", "sitting", "walking"]
WEATHER = ["sunny", "rainy", "snowy"]


def captions(n: int) -> list[str]:
    return [
        f"The image features dog {i} {POSES[i % 3]} outdoors on a {WEATHER[i % 2]} day."
        for i in range(n)
    ]


def test_a_batch_holds_what_an_answer_within_max_tokens_holds():
    assert captions_per_call(40, 5, 2048) == 40  # the defaults: the setting decides
    assert captions_per_call(40, 30, 2048) == 14  # 30 dimensions: 70 tokens a caption
    assert captions_per_call(40, 30, 64) == 1
    assert captions_per_call(40, 1, 2048) == 40


async def test_many_dimensions_split_a_batch_so_that_no_answer_is_cut():
    """Twelve dimensions and LLM_MAX_TOKENS 256: forty captions in one call would want an
    answer of about 450 tokens, cut at 256 and lost; split, every caption is answered."""
    dims = [DimensionProposal("pose", POSES), DimensionProposal("weather", WEATHER)]
    others = ["background", "time of day", "color", "brightness", "count", "framing"]
    others += ["texture", "contrast", "colorfulness", "setting"]
    dims += [DimensionProposal(name, list(FACETS[name].attributes[:4])) for name in others]
    with FakeLLM() as server:
        log = MemoryCallLog()
        llm = client(server, log)
        try:
            assigner = Assigner(llm, DiscoverySteps(assign_captions_per_call=40))
            answers = await assigner.assign("dog", dims, captions(40))
        finally:
            await llm.chat.aclose()
        bodies = list(server.requests)
    assert all(not a.notes for a in answers), answers[0].notes
    assert [a.choices["pose"] for a in answers] == [POSES[i % 3] for i in range(40)]
    assert [a.choices["weather"] for a in answers] == [WEATHER[i % 2] for i in range(40)]
    assert {a.choices["framing"] for a in answers} == {OTHER}
    per_call = captions_per_call(40, 12, 256)
    assert len(bodies) == -(-40 // per_call)
    assert all(c.completion_tokens is not None and c.completion_tokens < 256 for c in log.calls)
    assert all(json.loads(c.raw_text or "") for c in log.calls)
