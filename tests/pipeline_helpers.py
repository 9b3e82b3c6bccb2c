"""Running jobs in-process against the real caption app, with transports that count or fail."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI

from analysis_service.pipeline.runner import run_job


class CountingTransport(httpx.AsyncBaseTransport):
    """Forwards to the caption app; counts the images sent and can fail on demand."""

    def __init__(self, app, fail_when: Callable[[int], bool] = lambda n: False):
        self._inner = httpx.ASGITransport(app=app)
        self.images_sent = 0
        self.caption_calls = 0
        self._fail_when = fail_when
        self.before_call: Callable[[], object] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/captions":
            self.caption_calls += 1
            if self._fail_when(self.caption_calls):
                raise httpx.ConnectError("connection refused (injected)")
            self.images_sent += len(json.loads(request.content)["images"])
            if self.before_call is not None:
                await self.before_call()  # type: ignore[misc]
        return await self._inner.handle_async_request(request)


async def submit(api, path: str) -> str:
    resp = await api.post("/v1/jobs", json={"dataset_path": path})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


async def run(job_id: str, settings, sessionmaker, transport) -> str | None:
    return await run_job(uuid.UUID(job_id), settings, sessionmaker, caption_transport=transport)


async def answers(api, job_id: str) -> dict[str, bytes]:
    """Every answer the API gives about a finished job, by URL."""
    got: dict[str, bytes] = {}

    async def get(path: str, **params: object) -> bytes:
        resp = await api.get(path, params=params)
        assert resp.status_code == 200, (path, resp.text)
        got[f"{path}?{urlencode(params)}"] = resp.content
        return resp.content

    base = f"/v1/jobs/{job_id}"
    await get(base)
    await get(f"{base}/structure")
    await get(f"{base}/events")
    await get(f"{base}/invalid-images")
    await get(f"{base}/invalid-images", limit=1, offset=1)
    await get(f"{base}/assignments")
    await get(f"{base}/assignments", limit=3, offset=2)
    await get(f"{base}/assignments", format="csv")
    await get(f"{base}/subpopulations")
    await get(f"{base}/subpopulations", **{"class": "cat", "min_size": 1})
    for sub in (await api.get(f"{base}/subpopulations")).json()["items"]:
        await get(f"/v1/subpopulations/{sub['id']}/images", limit=1000)
    return got


@asynccontextmanager
async def api_client(
    app: FastAPI, base_url: str = "http://localhost", **client_options
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app in process, the app started (its lifespan) for the block."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=base_url, **client_options
        ) as client:
            yield client
