"""CAPTION_API_KEY: the caption service requires it when set, and the analysis service's
caption client sends it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from analysis_service.clients.caption_client import CaptionClient, CaptionServiceError, ImageRef
from caption_service.app import create_app
from caption_service.settings import CaptionSettings
from shared.retry import RetryPolicy
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import run, submit

KEY = "caption-shared-secret-0123456789"
BASE = "http://caption.test"
OPTIONS = {
    "retry": RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0),
    "timeout_s": 30.0,
    "send": "path",
    "overload_wait_s": 10.0,
}


@pytest.fixture
async def guarded_app(caption_settings: CaptionSettings) -> AsyncIterator:
    app = create_app(caption_settings.model_copy(update={"caption_api_key": SecretStr(KEY)}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(guarded_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=guarded_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def test_without_the_key_requests_are_401_with_a_challenge(http, data_root: Path):
    path = write_image(data_root / "a.jpg")
    for resp in (
        await http.post("/v1/captions", json={"images": [{"id": "1", "path": str(path)}]}),
        await http.get("/v1/info"),
        await http.get("/metrics"),
    ):
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == 'Bearer realm="caption"'
        assert resp.json()["error"] == "unauthorized"


async def test_a_wrong_key_is_401(http):
    resp = await http.get("/v1/info", headers={"Authorization": f"Bearer {KEY}x"})
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    basic = await http.get("/v1/info", headers={"Authorization": f"Basic {KEY}"})
    assert basic.status_code == 401


async def test_the_key_is_accepted_and_health_stays_open(http, data_root: Path):
    path = write_image(data_root / "a.jpg")
    resp = await http.post(
        "/v1/captions",
        json={"images": [{"id": "1", "path": str(path)}]},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert resp.status_code == 200 and resp.json()["results"][0]["caption"]
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200
    info = await http.get("/v1/info", headers={"Authorization": f"Bearer {KEY}"})
    assert info.status_code == 200 and KEY not in info.text


async def test_without_a_key_set_the_service_is_open(caption_client):
    assert (await caption_client.get("/v1/info")).status_code == 200


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost:8001", True),
        ("caption.localhost", True),
        ("127.0.0.1:8001", True),
        ("[::1]:8001", True),
        ("caption:8001", False),  # the compose service name: there a key is required
        ("attacker.example:8001", False),  # a page that pointed its own name at 127.0.0.1
        ("localhost.attacker.example", False),
        ("192.0.2.7", False),
    ],
)
async def test_without_a_key_only_requests_addressed_to_a_loopback_name_are_answered(
    caption_client, data_root: Path, host: str, allowed: bool
):
    """DNS rebinding: a web page rebinds its name to 127.0.0.1, so its requests come from
    loopback; only the Host header tells them apart from the workers'."""
    path = write_image(data_root / "a.jpg")
    body = {"images": [{"id": "1", "path": str(path)}]}
    for resp in (
        await caption_client.post("/v1/captions", json=body, headers={"Host": host}),
        await caption_client.get("/v1/info", headers={"Host": host}),
        await caption_client.get("/metrics", headers={"Host": host}),
    ):
        assert (resp.status_code == 200) is allowed, resp.text
        if not allowed:
            assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
            assert "addressed to localhost" in resp.json()["detail"]
            assert "CAPTION_API_KEY" in resp.json()["detail"]
    # Health stays open to orchestrators, whatever name they use.
    assert (await caption_client.get("/healthz", headers={"Host": host})).status_code == 200
    assert (await caption_client.get("/readyz", headers={"Host": host})).status_code == 200


async def test_without_a_key_clients_not_on_loopback_are_refused(caption_app):
    transport = httpx.ASGITransport(app=caption_app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        resp = await client.get("/v1/info")
        assert resp.status_code == 403 and "loopback clients only" in resp.json()["detail"]
        assert (await client.get("/healthz")).status_code == 200


async def test_with_the_key_any_host_name_and_client_may_be_used(guarded_app):
    transport = httpx.ASGITransport(app=guarded_app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://caption:8001") as client:
        resp = await client.get("/v1/info", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 200


async def test_the_analysis_client_sends_the_key(guarded_app, data_root: Path):
    path = write_image(data_root / "a.jpg")
    transport = httpx.ASGITransport(app=guarded_app)
    async with CaptionClient([BASE], **OPTIONS, api_key=KEY, transport=transport) as client:
        _, results = await client.caption([ImageRef("1", path)])
        assert results[0].caption and results[0].error is None
    async with CaptionClient([BASE], **OPTIONS, transport=transport) as client:
        with pytest.raises(CaptionServiceError, match="HTTP 401"):
            await client.caption([ImageRef("1", path)])


def test_the_key_is_not_shown_by_the_settings():
    settings = CaptionSettings(caption_api_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())


async def test_a_job_captions_through_a_guarded_service_with_the_key(
    api, analysis_settings, sessionmaker, guarded_app, data_root: Path
):
    make_dataset(data_root / "pets")
    transport = httpx.ASGITransport(app=guarded_app)
    keyed = analysis_settings.model_copy(update={"caption_api_key": SecretStr(KEY)})
    job_id = await submit(api, "pets")
    assert await run(job_id, keyed, sessionmaker, transport) == "succeeded"
    # Other images (those of pets are captioned already): without the key, the job fails.
    make_dataset(data_root / "birds", classes=("owl", "crow"))
    unkeyed_job = await submit(api, "birds")
    assert await run(unkeyed_job, analysis_settings, sessionmaker, transport) == "failed"
    error = (await api.get(f"/v1/jobs/{unkeyed_job}")).json()["error"]
    assert "401" in error and KEY not in error
