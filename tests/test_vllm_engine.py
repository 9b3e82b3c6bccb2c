"""The vLLM engine through the caption service, against a fake AsyncLLM with its interface."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from caption_service.app import create_app
from caption_service.engines.vllm_engine import VllmEngine, build_sampling_params, engine_args
from caption_service.settings import DEFAULT_INSTRUCTION, CaptionSettings
from tests.builders import write_image
from tests.fakes.fake_vllm import (
    FakeAsyncLLM,
    FakeOutputKind,
    FakeSamplingParams,
    QueueOverflowError,
)


def fake_params(settings: CaptionSettings) -> FakeSamplingParams:
    return build_sampling_params(settings, lambda **kw: FakeSamplingParams(kw), FakeOutputKind)


@pytest.fixture
def settings(data_root: Path) -> CaptionSettings:
    return CaptionSettings(
        data_roots=str(data_root), caption_engine="vllm", caption_max_tokens=40, caption_seed=7
    )


def app_with(fake: FakeAsyncLLM, settings: CaptionSettings):
    params = fake_params(settings)
    return create_app(settings, lambda s, _: VllmEngine(fake, s, lambda: params))


async def _client(app):
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://caption.localhost")


def images(data_root: Path, n: int, size=(1000, 500)) -> list[dict]:
    return [
        {"id": str(i), "path": str(write_image(data_root / f"{i}.jpg", size=size, marker=i))}
        for i in range(n)
    ]


async def test_prompt_params_and_concurrency(settings, data_root):
    fake = FakeAsyncLLM(step_s=0.001, caption_tokens=30)
    app = app_with(fake, settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        resp = await client.post("/v1/captions", json={"images": images(data_root, 8)})
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert all(r["caption"] and r["error"] is None for r in results)
    assert results[0]["output_tokens"] == 30 and results[0]["finish_reason"] == "stop"
    assert results[0]["prompt_tokens"] > 576
    assert len(fake.calls) == 8
    prompt, params, _ = fake.calls[0]
    assert prompt["prompt"] == f"USER: <image>\n{DEFAULT_INSTRUCTION} ASSISTANT:"
    assert params.kwargs == {
        "temperature": 0.0,
        "max_tokens": 40,
        "seed": 7,
        "output_kind": FakeOutputKind.FINAL_ONLY,
    }
    assert len({c[2] for c in fake.calls}) == 8  # a unique request id per image
    assert fake.peak_in_flight == 8  # all images of the request in flight together
    image = prompt["multi_modal_data"]["image"]
    assert image.mode == "RGB" and min(image.size) == 336 and image.size == (672, 336)


async def test_captions_are_stripped_and_length_is_reported(settings, data_root):
    fake = FakeAsyncLLM(caption_tokens=100)
    app = app_with(fake, settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        result = (await client.post("/v1/captions", json={"images": images(data_root, 1)})).json()
    first = result["results"][0]
    assert first["caption"] == first["caption"].strip()
    assert first["finish_reason"] == "length" and first["output_tokens"] == 40


async def test_class_hint_reproduces_the_reference_prompt(settings, data_root):
    fake = FakeAsyncLLM()
    app = app_with(fake, settings)
    items = [{**im, "class_name": "waterbird"} for im in images(data_root, 1)]
    async with app.router.lifespan_context(app), await _client(app) as client:
        resp = await client.post("/v1/captions", json={"images": items, "class_hint": True})
        plain = (await client.get("/v1/info")).json()
        hinted = (await client.get("/v1/info", params={"class_hint": "true"})).json()
    assert resp.status_code == 200
    assert fake.calls[0][0]["prompt"] == (
        "USER: <image>\nDescribe the image in detail with the keyword waterbird. ASSISTANT:"
    )
    assert hinted["prompt_version"] != plain["prompt_version"]
    assert resp.json()["engine"] == hinted


async def test_class_hint_without_class_names_is_422(settings, data_root):
    app = app_with(FakeAsyncLLM(), settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        resp = await client.post(
            "/v1/captions", json={"images": images(data_root, 1), "class_hint": True}
        )
    assert resp.status_code == 422 and "class_name" in resp.json()["detail"]


async def test_degenerate_and_bad_images_get_errors_rest_is_captioned(settings, data_root):
    fake = FakeAsyncLLM()
    app = app_with(fake, settings)
    one_px = write_image(data_root / "line.png", size=(1, 300))
    items = [*images(data_root, 2), {"id": "line", "path": str(one_px)}]
    async with app.router.lifespan_context(app), await _client(app) as client:
        results = (await client.post("/v1/captions", json={"images": items})).json()["results"]
    assert [r["error"] is None for r in results] == [True, True, False]
    assert "degenerate" in results[2]["error"]
    assert len(fake.calls) == 2


async def test_dead_engine_answers_503_and_readyz_fails(settings, data_root):
    fake = FakeAsyncLLM(step_s=0.01, caption_tokens=50)
    app = app_with(fake, settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        pending = asyncio.create_task(
            client.post("/v1/captions", json={"images": images(data_root, 3)})
        )
        async with asyncio.timeout(30):
            while not fake.calls and not pending.done():  # noqa: ASYNC110 - until it generates
                await asyncio.sleep(0.005)
        fake.die()  # mid-run
        resp = await pending
        assert resp.status_code == 503 and "dead" in resp.json()["detail"]
        assert (await client.get("/readyz")).status_code == 503
        again = await client.post("/v1/captions", json={"images": images(data_root, 1)})
        assert again.status_code == 503


async def test_overload_is_503_with_retry_after(settings, data_root):
    settings = settings.model_copy(update={"caption_max_in_flight": 4})
    fake = FakeAsyncLLM(step_s=0.01, caption_tokens=20)  # slow engine
    app = app_with(fake, settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        first = asyncio.create_task(
            client.post("/v1/captions", json={"images": images(data_root, 4)})
        )
        # Wait for the first batch's admission itself: a fixed sleep raced it on a busy machine.
        async with asyncio.timeout(30):
            while app.state.captioner.in_flight < 4 and not first.done():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        second = await client.post("/v1/captions", json={"images": images(data_root, 2)})
        assert second.status_code == 503
        assert second.json()["error"] == "overloaded"
        assert int(second.headers["retry-after"]) >= 1
        assert (await first).status_code == 200
        # Once the first batch is done there is room again.
        assert (
            await client.post("/v1/captions", json={"images": images(data_root, 2)})
        ).status_code == 200


async def test_client_disconnect_aborts_generation(settings, data_root):
    fake = FakeAsyncLLM(step_s=0.02, caption_tokens=1000)
    app = app_with(fake, settings)
    body = json.dumps({"images": images(data_root, 3)}).encode()
    sent: list[dict] = []
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        while len(fake.calls) < 3:  # noqa: ASYNC110 - stay connected until generation starts
            await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/captions",
        "raw_path": b"/v1/captions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("caption", 80),
    }
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert sorted(fake.aborted) == sorted(c[2] for c in fake.calls)
    assert fake.in_flight == 0


async def test_shutdown_closes_the_engine(settings):
    fake = FakeAsyncLLM()
    app = app_with(fake, settings)
    async with app.router.lifespan_context(app):
        pass
    assert fake.shut_down


def test_engine_args_set_the_batching_limits(settings):
    args = engine_args(settings.model_copy(update={"vllm_extra_args": '{"enforce_eager": true}'}))
    assert args["max_num_seqs"] == 128 and args["max_num_batched_tokens"] == 16384
    assert args["limit_mm_per_prompt"] == {"image": 1}
    assert args["model"] == "llava-hf/llava-1.5-7b-hf" and args["enforce_eager"] is True


async def _caption_one(fake: FakeAsyncLLM, settings, data_root) -> httpx.Response:
    app = app_with(fake, settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        return await client.post("/v1/captions", json={"images": images(data_root, 2)})


@pytest.mark.parametrize("reason", ["abort", "error"])
async def test_request_ended_by_the_engine_is_503_not_a_caption(settings, data_root, reason):
    # vLLM ends requests of a paused engine with "abort" and a retryable failure with "error":
    # storing their (empty) text as a caption would keep it for good.
    fake = FakeAsyncLLM()
    fake.end_with = reason
    resp = await _caption_one(fake, settings, data_root)
    assert resp.status_code == 503 and reason in resp.json()["detail"]
    assert int(resp.headers["retry-after"]) >= 1


async def test_engine_queue_full_is_503_with_retry_after(settings, data_root):
    fake = FakeAsyncLLM()
    fake.refusal = QueueOverflowError("The engine is currently busy")
    resp = await _caption_one(fake, settings, data_root)
    assert resp.status_code == 503 and "busy" in resp.json()["detail"]
    assert int(resp.headers["retry-after"]) >= 1


async def test_refused_prompt_is_a_per_image_error(settings, data_root):
    fake = FakeAsyncLLM()
    fake.refusal = ValueError("prompt is longer than the maximum model length")
    resp = await _caption_one(fake, settings, data_root)
    assert resp.status_code == 200
    errors = [r["error"] for r in resp.json()["results"]]
    assert all(e and "maximum model length" in e for e in errors)


async def test_empty_caption_is_an_error(settings, data_root):
    fake = FakeAsyncLLM(caption_tokens=0)
    resp = await _caption_one(fake, settings, data_root)
    results = resp.json()["results"]
    assert resp.status_code == 200 and all(r["caption"] is None for r in results)
    assert all("empty caption" in r["error"] for r in results)
