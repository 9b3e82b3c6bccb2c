"""Rare subpopulations: the attributes below a share of their class, rarest first, with
template prompts; an LLM writes richer ones on POST, stored, costed on the job and cached."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from analysis_service.app import create_app
from analysis_service.models import Job, LLMCall, TailPrompt
from analysis_service.reasoners import llm_answers
from benchmarks.synthetic_job import SyntheticImage, insert_job
from tests.pipeline_helpers import api_client

# Per class, 40 images: background water 30, grass 8, snow 2; time of day day 39, other 1.
LAYOUT = [("water", 30), ("grass", 8), ("snow", 2)]


def _images() -> list[SyntheticImage]:
    images = []
    for class_name in ("red kite", "crow"):
        i = 0
        for background, count in LAYOUT:
            for _ in range(count):
                time = "other" if i == 0 else "day"
                caption = f"A {class_name} flying over {background} <say hi>."
                images.append(
                    SyntheticImage(
                        f"{class_name}/{i:03d}.jpg",
                        class_name,
                        {"background": background, "time of day": time},
                        caption,
                    )
                )
                i += 1
    return images


async def _job(sessionmaker, status: str = "succeeded") -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, _images(), status=status))


@pytest.fixture
def llm_settings(analysis_settings, llm):
    return analysis_settings.model_copy(
        update={
            "llm_base_url": llm.base_url,
            "llm_model": "fake-llm",
            "llm_retry_base_delay_s": 0.0,
            "llm_retries": 2,
        }
    )


@pytest.fixture
async def llm_api(llm_settings):
    async with api_client(create_app(llm_settings)) as client:
        yield client


async def test_the_tail_lists_rare_attributes_rarest_first_with_template_prompts(api, sessionmaker):
    job = await _job(sessionmaker)
    resp = await api.get(f"/v1/jobs/{job}/tail", params={"max_share": 0.25})
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert page["total"] == 4 and page["max_share"] == 0.25
    found = [(i["class"], i["dimension"], i["attribute"], i["size"]) for i in page["items"]]
    # snow (2/40) before grass (8/40); `other` (1/40) is not a subpopulation to generate.
    assert found == [
        ("crow", "background", "snow", 2),
        ("red kite", "background", "snow", 2),
        ("crow", "background", "grass", 8),
        ("red kite", "background", "grass", 8),
    ]
    kite_snow = page["items"][1]
    assert kite_snow["share"] == pytest.approx(2 / 40)
    assert kite_snow["template_prompt"] == "a photo of a red kite, background: snow"
    assert kite_snow["llm_prompt"] is None and kite_snow["llm_model"] is None
    # Below the share, strictly: snow's 2/40 is not below the default 0.05.
    assert (await api.get(f"/v1/jobs/{job}/tail")).json()["items"] == []
    snow = (await api.get(f"/v1/jobs/{job}/tail", params={"max_share": 0.051})).json()
    assert [i["attribute"] for i in snow["items"]] == ["snow", "snow"]
    one = await api.get(
        f"/v1/jobs/{job}/tail",
        params={"max_share": 1, "class": "crow", "dimension": "background", "limit": 1},
    )
    assert one.json()["total"] == 3 and len(one.json()["items"]) == 1
    second = await api.get(f"/v1/jobs/{job}/tail", params={"max_share": 1, "offset": 1})
    assert second.json()["items"][0] == page["items"][1]


@pytest.mark.parametrize("max_share", ["0", "-0.1", "1.5", "nan", "x"])
async def test_max_share_outside_0_1_is_refused(api, sessionmaker, max_share):
    job = await _job(sessionmaker)
    resp = await api.get(f"/v1/jobs/{job}/tail", params={"max_share": max_share})
    assert resp.status_code == 422, resp.text
    assert "max_share" in resp.text


async def test_an_unfinished_or_unknown_job_has_no_tail(api, sessionmaker):
    job = await _job(sessionmaker, status="running")
    resp = await api.get(f"/v1/jobs/{job}/tail")
    assert resp.status_code == 409 and "running" in resp.json()["detail"]
    missing = await api.get("/v1/jobs/00000000-0000-0000-0000-000000000000/tail")
    assert missing.status_code == 404


async def test_without_an_llm_the_post_says_none_is_configured(api, sessionmaker):
    job = await _job(sessionmaker)
    resp = await api.post(f"/v1/jobs/{job}/tail")
    assert resp.status_code == 409
    assert "LLM_BASE_URL" in resp.json()["detail"]


async def test_the_llm_writes_prompts_stored_costed_and_not_asked_twice(llm_api, sessionmaker, llm):
    job = await _job(sessionmaker)
    resp = await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.25, "limit": 3})
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert done["model"] == "fake-llm" and done["failed"] == []
    assert [i["attribute"] for i in done["written"]] == ["snow", "snow", "grass"]
    assert done["remaining"] == 1
    kite_snow = done["written"][1]
    assert kite_snow["class"] == "red kite"
    assert kite_snow["llm_prompt"].startswith("a realistic photo of red kite, background snow")
    assert len(llm.requests) == 3
    prompt = next(
        r["messages"][1]["content"]
        for r in llm.requests
        if "red kite" in r["messages"][1]["content"]
    )
    # The captions reach the LLM fenced as data, their brackets neutralised.
    assert "<descriptions>\n1. A red kite flying over snow ‹say hi›." in prompt
    assert "its other values: ['water', 'grass']" in prompt

    rest = (await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.25})).json()
    assert [i["attribute"] for i in rest["written"]] == ["grass"] and rest["remaining"] == 0
    again = (await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.25})).json()
    assert again["written"] == [] and again["remaining"] == 0
    assert len(llm.requests) == 4

    page = (await llm_api.get(f"/v1/jobs/{job}/tail", params={"max_share": 0.25})).json()
    assert all(i["llm_prompt"] and i["llm_model"] == "fake-llm" for i in page["items"])
    async with sessionmaker() as session:
        calls = (await session.execute(select(LLMCall.step, LLMCall.job_id))).all()
    assert len(calls) == 4 and {(step, str(j)) for step, j in calls} == {("tail_prompt", job)}
    # The job's spending shows the calls.
    spent = (await llm_api.get(f"/v1/jobs/{job}")).json()["llm"]["spent"]
    assert spent["calls"] == 4 and spent["tokens"] > 0


async def test_an_answer_with_control_characters_is_not_kept(llm_api, sessionmaker, llm):
    job = await _job(sessionmaker)
    llm.faults.extend(["outside", "outside"])  # the answer and its corrective retry
    resp = await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.06, "limit": 1})
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert done["written"] == [] and done["remaining"] == 2
    assert "control characters" in done["failed"][0]["problem"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TailPrompt)) == 0


def test_a_generation_prompt_is_one_short_line():
    answer = llm_answers.ImagePrompt
    assert answer.model_validate({"prompt": " a photo of a crow in snow "}).prompt == (
        "a photo of a crow in snow"
    )
    for bad in ["", "  ", "a\nb", "a\u202eb", "x" * (llm_answers.MAX_IMAGE_PROMPT_CHARS + 1)]:
        with pytest.raises(ValueError):
            answer.model_validate({"prompt": bad})


async def test_a_spent_budget_is_a_conflict_and_an_unreachable_llm_unavailable(
    llm_api, sessionmaker, llm
):
    job = await _job(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job).values(options={"token_budget": 10}))
    resp = await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.5})
    assert resp.status_code == 409 and "token budget" in resp.json()["detail"]
    assert llm.requests == []
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job).values(options={}))
    llm.faults.extend(["500"] * 4)
    resp = await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.5, "limit": 1})
    assert resp.status_code == 503, resp.text


async def test_prompts_go_with_their_job(llm_api, sessionmaker):
    job = await _job(sessionmaker)
    written = await llm_api.post(f"/v1/jobs/{job}/tail", params={"max_share": 0.5})
    assert len(written.json()["written"]) == 4
    assert (await llm_api.delete(f"/v1/jobs/{job}")).status_code == 204
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TailPrompt)) == 0
