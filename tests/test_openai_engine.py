"""The openai engine against a local chat-completions server over real HTTP."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from caption_service.app import create_app
from caption_service.settings import CaptionSettings
from tests.builders import write_image
from tests.fakes.chat_server import ChatServer


@pytest.fixture
def server():
    with ChatServer() as chat:
        yield chat


def settings_for(server: ChatServer, data_root: Path, **extra) -> CaptionSettings:
    values = {
        "data_roots": str(data_root),
        "caption_engine": "openai",
        "caption_openai_base_url": server.base_url,
        "caption_openai_model": "llava-test",
        "caption_openai_api_key": SecretStr("sk-test"),
        "caption_openai_timeout_s": 30.0,  # short only where a test times a request out
        "caption_openai_retries": 3,
        "caption_openai_retry_base_delay_s": 0.01,
    }
    return CaptionSettings(**{**values, **extra})


async def post(settings: CaptionSettings, items: list[dict]) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://caption.localhost"
        ) as client:
            return await client.post("/v1/captions", json={"images": items})


def one_image(data_root: Path) -> list[dict]:
    return [{"id": "a", "path": str(write_image(data_root / "a.jpg", size=(900, 600)))}]


async def test_request_shape_and_token_usage(server, data_root):
    resp = await post(settings_for(server, data_root), one_image(data_root))
    assert resp.status_code == 200
    result = resp.json()["results"][0]
    assert result["caption"] == "A photo of a dog on the grass."
    assert result["output_tokens"] == 8 and result["prompt_tokens"] > 576
    body = server.requests[0]
    assert body["model"] == "llava-test" and body["temperature"] == 0
    assert body["max_tokens"] == 192
    text, image = body["messages"][0]["content"]
    assert text["type"] == "text" and "Describe this image" in text["text"]
    url = image["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert min(sent.size) == 336
    assert server.headers[0]["authorization"] == "Bearer sk-test"


async def test_429_500_and_timeouts_are_retried(server, data_root):
    server.faults = ["429", "500", "timeout"]
    server.timeout_sleep_s = 6.0
    settings = settings_for(
        server, data_root, caption_openai_retries=4, caption_openai_timeout_s=3.0
    )
    resp = await post(settings, one_image(data_root))
    assert resp.status_code == 200
    assert resp.json()["results"][0]["caption"]
    assert len(server.requests) == 4


async def test_endpoint_that_stays_down_is_503_with_retry_after(server, data_root):
    server.faults = ["500"] * 10
    resp = await post(settings_for(server, data_root), one_image(data_root))
    assert resp.status_code == 503
    assert "unavailable after 3 attempts" in resp.json()["detail"]
    assert "retry-after" in resp.headers


async def test_unreachable_endpoint_is_503(data_root):
    dead = ChatServer()  # never started: nothing listens on its port
    resp = await post(settings_for(dead, data_root), one_image(data_root))
    assert resp.status_code == 503


async def test_refused_or_malformed_answers_are_per_image_errors(server, data_root):
    server.faults = ["400", "malformed"]
    items = [
        {"id": str(i), "path": str(write_image(data_root / f"{i}.jpg", marker=i))} for i in range(3)
    ]
    settings = settings_for(server, data_root, caption_openai_concurrency=1)
    results = (await post(settings, items)).json()["results"]
    errors = [r["error"] for r in results]
    assert "HTTP 400" in errors[0] and "malformed" in errors[1] and errors[2] is None
