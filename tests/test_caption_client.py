"""The caption client against fake caption services at the transport layer."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from analysis_service.clients.caption_client import CaptionClient, CaptionServiceError, ImageRef
from shared.http import tls_context
from shared.openai_chat import ChatClient, ChatEndpoint
from shared.retry import RetryPolicy

INFO = {"engine": "fake", "model": "m", "prompt_version": "v1", "prompt": "p", "params": {}}
FAST = RetryPolicy(attempts=4, base_delay=0.0, max_delay=0.0, jitter=0.0)
OPTIONS = {"retry": FAST, "timeout_s": 10.0, "send": "path", "overload_wait_s": 60.0}
IMAGES = [ImageRef("1", Path("/data/a.jpg")), ImageRef("2", Path("/data/b.jpg"))]


def _answer(request: httpx.Request) -> httpx.Response:
    import json

    items = json.loads(request.content)["images"]
    results = [{"id": it["id"], "caption": f"caption of {it['path']}"} for it in items]
    return httpx.Response(200, json={"engine": INFO, "results": results})


def _client(handler, urls=("http://a",), **options) -> CaptionClient:
    transport = httpx.MockTransport(handler)
    return CaptionClient(list(urls), **{**OPTIONS, **options}, transport=transport)


async def test_retries_overload_then_succeeds():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx.Response(503, headers={"Retry-After": "0"}, text="busy")
        return _answer(request)

    async with _client(handler) as client:
        _, results = await client.caption(IMAGES)
    assert len(seen) == 3
    assert [r.caption for r in results] == ["caption of /data/a.jpg", "caption of /data/b.jpg"]


async def test_connection_refused_is_retried_then_reported():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    async with _client(handler) as client:
        with pytest.raises(CaptionServiceError, match="unavailable after 4 attempts"):
            await client.caption(IMAGES)


async def test_client_errors_are_not_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(403, json={"error": "forbidden", "detail": "outside roots"})

    async with _client(handler) as client:
        with pytest.raises(CaptionServiceError, match="HTTP 403"):
            await client.caption(IMAGES)
    assert len(calls) == 1


async def test_batches_rotate_over_replicas_and_skip_a_dead_one():
    hosts = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host == "b":
            return httpx.Response(502)
        return _answer(request)

    async with _client(handler, urls=("http://a", "http://b")) as client:
        for _ in range(3):
            await client.caption(IMAGES)
    assert hosts.count("a") == 3 and "b" in hosts


async def test_results_for_other_images_are_refused():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"engine": INFO, "results": [{"id": "zzz", "caption": "x"}]}
        )

    async with _client(handler) as client:
        with pytest.raises(CaptionServiceError, match="other images"):
            await client.caption(IMAGES)


async def test_replicas_must_agree_on_the_engine():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**INFO, "model": request.url.host})

    async with _client(handler, urls=("http://a", "http://b")) as client:
        with pytest.raises(CaptionServiceError, match="different engines"):
            await client.info()


async def test_request_id_is_forwarded():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-request-id"))
        return _answer(request)

    async with _client(handler, request_id="job-42") as client:
        await client.caption(IMAGES)
    assert seen == ["job-42"]


async def test_overload_is_waited_out_without_using_up_attempts():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 6:  # more overloads than the 4 failure attempts allowed
            return httpx.Response(
                503, headers={"Retry-After": "0"}, json={"error": "overloaded", "detail": "full"}
            )
        return _answer(request)

    async with _client(handler) as client:
        _, results = await client.caption(IMAGES)
    assert len(calls) == 7 and results[0].caption


async def test_overload_that_never_ends_fails_after_the_wait_bound():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503, headers={"Retry-After": "0"}, json={"error": "overloaded", "detail": "full"}
        )

    async with _client(handler, overload_wait_s=0.05) as client:
        with pytest.raises(CaptionServiceError, match="stayed overloaded"):
            await client.caption(IMAGES)


async def test_concurrent_batches_spread_evenly_over_replicas():
    import asyncio

    in_flight = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}

    class SlowTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            host = request.url.host
            in_flight[host] += 1
            peak[host] = max(peak[host], in_flight[host])
            await asyncio.sleep(0.02)
            in_flight[host] -= 1
            await request.aread()
            return _answer(request)

    client = CaptionClient(["http://a", "http://b"], **OPTIONS, transport=SlowTransport())
    async with client:
        await asyncio.gather(*(client.caption(IMAGES) for _ in range(8)))
    assert peak == {"a": 4, "b": 4}


async def test_errors_name_the_caption_service_without_its_credentials():
    """A caption URL may carry a user and password; the message becomes the job's error."""
    refusing = httpx.MockTransport(lambda request: httpx.Response(400, text="no"))
    client = CaptionClient(
        ["http://worker:s3cret@caption.test:8001"], **OPTIONS, transport=refusing
    )
    async with client:
        with pytest.raises(CaptionServiceError) as caught:
            await client.info()
    assert "caption.test:8001" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "worker" not in str(caught.value)


async def test_data_mode_reads_through_the_checked_open_and_keeps_unreadable_images_apart(
    tmp_path: Path,
):
    import base64
    import json

    from analysis_service.clients.caption_client import LocalFiles

    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"image a")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    sent: list[list[dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["images"]
        sent.append(items)
        results = [{"id": it["id"], "caption": "a caption"} for it in items]
        return httpx.Response(200, json={"engine": INFO, "results": results})

    files = LocalFiles([root], max_bytes=1024)
    images = [
        ImageRef("1", root / "link.jpg"),
        ImageRef("2", root / "a.jpg"),
        ImageRef("3", root / "missing.jpg"),
    ]
    async with _client(handler, send="data", files=files) as client:
        engine, results = await client.caption(images)
        assert engine is not None and engine.engine == "fake"
        assert [r.id for r in results] == ["1", "2", "3"]
        assert "outside the allowed data roots" in (results[0].error or "")
        assert results[1].caption == "a caption" and results[1].error is None
        assert "no such file" in (results[2].error or "")
        assert [[(i["id"], base64.b64decode(i["data"])) for i in s] for s in sent] == [
            [("2", b"image a")]
        ]
        # Nothing readable: nothing sent, every image with its reason.
        engine, results = await client.caption([images[0]])
        assert engine is None and results[0].error and len(sent) == 1


async def test_clients_share_the_tls_settings_read_once(monkeypatch: pytest.MonkeyPatch):
    """A worker makes a caption client (and an LLM client) for every shard it runs: reading
    the certificate authorities again for each cost about 20 ms of CPU."""
    tls_context()  # read once, by whichever client came first
    loads = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    retry = RetryPolicy(attempts=1, base_delay=0.0)
    endpoint = ChatEndpoint(
        base_url="https://llm.example", api_key="k", model="m", timeout_s=5, retry=retry
    )
    clients = [
        *(
            CaptionClient(
                ["https://captions.example"],
                retry=retry,
                timeout_s=5,
                send="path",
                overload_wait_s=1,
            )
            for _ in range(3)
        ),
        ChatClient(endpoint),
    ]
    for client in clients:
        await client.aclose()
    assert loads == []
