"""Early stopping of the round loops in whole jobs: fewer calls, the same requests for a seed,
resumable, and an estimate that expects it. Through the varied fake LLM (answers that change
from sample to sample) on real captions."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import delete, func, select

from analysis_service.models import LLMCall
from benchmarks.discovery_stopping import real_captions, write_class, write_classes
from tests.conftest import SHARED_DATA
from tests.fakes.varied_llm import VariedFakeLLM
from tests.pipeline_helpers import api_client, run

LANDBIRD = SHARED_DATA / "waterbirds" / "landbird.csv"
pytestmark = pytest.mark.skipif(not LANDBIRD.exists(), reason="shared captions not found")
FIXED_STEPS = ("dimensions", "attributes", "refinement")


@pytest.fixture
def varied():
    with VariedFakeLLM() as server:
        yield server


@pytest.fixture
def settings(analysis_settings, varied):
    return analysis_settings.model_copy(
        update={
            "llm_base_url": varied.base_url,
            "llm_model": "fake-llm",
            "llm_retry_base_delay_s": 0.0,
            "llm_retries": 2,
            "assign_batch_size": 200,
        }
    )


@pytest.fixture
async def api(settings):
    from analysis_service.app import create_app

    async with api_client(create_app(settings)) as client:
        yield client


@pytest.fixture
def landbird(data_root) -> str:
    """One class of 120 real captions."""
    rows = random.Random(0).sample(real_captions(LANDBIRD), 120)
    return write_class(data_root / "landbird.csv", "landbird", rows).name


async def job(api, settings, sessionmaker, **body) -> dict:
    resp = await api.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    assert await run(job_id, settings, sessionmaker, None) == "succeeded"
    return (await api.get(f"/v1/jobs/{job_id}")).json()


async def fixed_calls(sessionmaker, job_id: str) -> int:
    async with sessionmaker() as session:
        return await session.scalar(
            select(func.count())
            .select_from(LLMCall)
            .where(LLMCall.job_id == job_id, LLMCall.step.in_(FIXED_STEPS))
        )


def asked(requests: list[dict]) -> list[str]:
    """Each request as what identifies it: messages, seed and temperature."""
    return [json.dumps([r["messages"], r.get("seed"), r.get("temperature")]) for r in requests]


async def test_early_stopping_records_far_fewer_llm_calls(api, settings, sessionmaker, landbird):
    every = await job(api, settings, sessionmaker, captions_path=landbird, saturation_rounds=0)
    early = await job(api, settings, sessionmaker, captions_path=landbird, seed=1)
    full_calls = await fixed_calls(sessionmaker, every["id"])
    early_calls = await fixed_calls(sessionmaker, early["id"])
    assert full_calls > 100  # 10 + 20 rounds and 20 refinement rounds of 3 calls and more
    assert early_calls < full_calls / 2
    assert early["llm"]["spent"]["tokens"] < every["llm"]["spent"]["tokens"] * 0.7
    assert early["llm"]["estimate"]["worst_tokens"] > early["llm"]["estimate"]["tokens"]


async def test_a_seed_sends_the_same_requests_with_early_stopping(
    api, settings, sessionmaker, landbird, varied
):
    first = await job(api, settings, sessionmaker, captions_path=landbird, seed=4)
    sent = sorted(asked(varied.requests))
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(LLMCall))  # no answer comes from the cache
    varied.requests.clear()
    second = await job(api, settings, sessionmaker, captions_path=landbird, seed=4)
    assert sorted(asked(varied.requests)) == sent
    structures = []
    for view in (first, second):
        classes = (await api.get(f"/v1/jobs/{view['id']}/structure")).json()["classes"]
        structures.append(
            [
                (d["dimension"], a["attribute"], a["size"])
                for c in classes
                for d in c["dimensions"]
                for a in d["attributes"]
            ]
        )
    assert structures[0] == structures[1] and structures[0]


async def test_a_resumed_class_asks_only_what_was_not_answered(
    api, settings, sessionmaker, landbird, varied
):
    """The LLM goes down in the middle of the attribute rounds; the retried job asks again only
    what had no answer, and in all asks exactly what an uninterrupted job asks."""
    await job(api, settings, sessionmaker, captions_path=landbird, seed=7)
    clean = set(asked(varied.requests))
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(LLMCall))
    varied.requests.clear()
    plain, answered = varied.answer, set()

    def answer(body):  # type: ignore[no-untyped-def]
        answered.add(asked([body])[0])
        if "For each dimension below, list up to" in body["messages"][1]["content"]:
            if sum("For each dimension below" in a for a in answered) == 4:
                varied.faults.extend(["500"] * 50)  # round 4 is answered, then the LLM is down
        return plain(body)

    varied.answer = answer
    resp = await api.post("/v1/jobs", json={"captions_path": landbird, "seed": 7})
    job_id = resp.json()["id"]
    assert await run(job_id, settings, sessionmaker, None) == "failed"
    before, answered_before = len(varied.requests), set(answered)
    varied.faults.clear()
    assert (await api.post(f"/v1/jobs/{job_id}/retry")).status_code == 202
    assert await run(job_id, settings, sessionmaker, None) == "succeeded"
    assert answered_before and not answered_before & set(asked(varied.requests[before:]))
    assert set(asked(varied.requests)) == clean


@pytest.mark.parametrize(
    ("mode", "criterion"), [("per_class", None), ("organization", "background")]
)
async def test_the_estimate_shown_before_discovery_is_within_a_fifth_of_what_was_spent(
    api, settings, sessionmaker, data_root, mode, criterion
):
    """The benchmark checks 1,000 classes of 50 captions (BENCH_ONLY=stopping); here 6."""
    path = write_classes(data_root / "classes.csv", 6, 50)
    body = {"captions_path": path.name, "mode": mode}
    if criterion:
        body["criterion"] = criterion
    view = await job(api, settings, sessionmaker, **body)
    estimate, spent = view["llm"]["estimate"], view["llm"]["spent"]
    assert abs(estimate["tokens"] / spent["tokens"] - 1) <= 0.2, (estimate, spent)
    assert abs(estimate["calls"] / spent["calls"] - 1) <= 0.2, (estimate, spent)
