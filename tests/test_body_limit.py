"""Request bodies over MAX_REQUEST_BYTES are refused with 413 before they are buffered, and
bodies that stop arriving with 408 after REQUEST_BODY_TIMEOUT_S."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from analysis_service.app import create_app as create_analysis_app
from caption_service.app import create_app as create_caption_app

# Short, so that the test of a stalled body does not wait long.
LIMITS = {"max_request_bytes": 2048, "request_body_timeout_s": 0.3}


@pytest.fixture(params=["analysis", "caption"])
async def small_app(request, analysis_settings, caption_settings) -> AsyncIterator[tuple]:
    if request.param == "analysis":
        app = create_analysis_app(analysis_settings.model_copy(update=LIMITS))
        path = "/v1/jobs"
    else:
        app = create_caption_app(caption_settings.model_copy(update=LIMITS))
        path = "/v1/captions"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client, path


def _body(size: int) -> bytes:
    return b'{"dataset_path": "' + b"x" * size + b'"}'


async def test_a_declared_length_over_the_cap_is_413_at_once(small_app):
    client, path = small_app
    resp = await client.post(
        path, content=_body(10_000), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"
    assert "MAX_REQUEST_BYTES" in resp.json()["detail"]


async def test_a_streamed_body_is_cut_off_when_it_passes_the_cap(small_app):
    client, path = small_app
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 MB offered, 1 kB at a time, no Content-Length
            sent += 1
            yield b" " * 1024

    resp = await client.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"
    assert sent < 10  # the rest was never read


async def test_a_body_under_the_cap_is_served(small_app):
    client, path = small_app
    resp = await client.post(path, content=b"{}", headers={"content-type": "application/json"})
    assert resp.status_code == 422  # read and validated, not refused for its size


async def test_a_body_that_stops_arriving_is_408_not_a_held_request(small_app):
    client, path = small_app
    never = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"dataset_path": '
        await never.wait()  # the client declares more and never sends it
        yield b'"x"}'

    resp = await client.post(path, content=stalls(), headers={"content-type": "application/json"})
    assert resp.status_code == 408
    assert resp.json()["error"] == "request_timeout"
    assert "REQUEST_BODY_TIMEOUT_S" in resp.json()["detail"]
