"""Client of the caption service replicas: least-loaded spreading, back-off, overload waits."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared.caption_contract import CaptionResponse, CaptionResult, EngineInfo
from shared.files import UnreadableFile, read_inside_roots
from shared.http import RETRYABLE_STATUS, public_url, retry_after, send, tls_context
from shared.logging import REQUEST_ID_HEADER
from shared.retry import Busy, RetryableError, RetryPolicy

logger = logging.getLogger(__name__)

# 409 is not transient here: the caption service does not use it for contention.
RETRYABLE = RETRYABLE_STATUS - {409}


class CaptionServiceError(RuntimeError):
    """The caption service could not caption a batch; the message says why."""


@dataclass(frozen=True)
class ImageRef:
    id: str
    path: Path
    class_name: str | None = None


@dataclass(frozen=True)
class LocalFiles:
    """Where images sent as bytes (CAPTION_SEND=data) may be read from, and their size limit."""

    roots: list[Path]
    max_bytes: int


def _is_overload(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    try:
        return bool(response.json().get("error") == "overloaded")
    except ValueError:
        return False


class CaptionClient:
    """Sends each batch to the replica with the fewest batches in flight; a replica that just
    failed is avoided for its back-off delay, so one dead GPU does not stall a job."""

    def __init__(
        self,
        urls: list[str],
        *,
        retry: RetryPolicy,
        timeout_s: float,
        send: str,
        overload_wait_s: float,
        files: LocalFiles | None = None,
        request_id: str | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not urls:
            raise ValueError("at least one caption service URL is needed")
        if send == "data" and files is None:
            raise ValueError("sending image bytes needs the folders they may be read from")
        self.urls = urls
        self._load = dict.fromkeys(urls, 0)
        self._avoid_until = dict.fromkeys(urls, 0.0)
        self._turn = itertools.count()
        self._retry = retry
        self._send = send
        self._files = files
        self._overload_wait_s = overload_wait_s
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            headers=headers,
            transport=transport,
            verify=tls_context(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CaptionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _pick(self) -> str:
        now = time.monotonic()
        healthy = [u for u in self.urls if self._avoid_until[u] <= now] or self.urls
        turn = next(self._turn)
        # Fewest in flight first; ties broken in rotation so idle replicas share evenly.
        return min(
            healthy, key=lambda u: (self._load[u], (self.urls.index(u) - turn) % len(self.urls))
        )

    async def _attempt(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One attempt; transient failures become RetryableError, others CaptionServiceError."""
        # 503 'overloaded' is backpressure, told apart before the generic retryable check.
        response = await send(self._http, method, url, retryable=RETRYABLE - {503}, **kwargs)
        shown = public_url(url)  # these messages become the job's error
        if _is_overload(response):
            raise Busy(f"{shown}: overloaded", retry_after=retry_after(response))
        if response.status_code == 503:
            raise RetryableError(
                f"{shown}: HTTP 503: {response.text[:200]}", retry_after=retry_after(response)
            )
        if response.status_code >= 400:
            raise CaptionServiceError(
                f"{shown}: HTTP {response.status_code}: {response.text[:300]}"
            )
        return response

    async def _call(
        self, method: str, path: str, url: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """`url`, else the replica _pick chooses for each attempt, under the retry policy. A
        replica counts the request in flight from the attempt until the next attempt picks
        (its back-off or overload wait included), so that concurrent batches go elsewhere."""
        held: list[str] = []  # the replica of the latest attempt

        async def attempt() -> httpx.Response:
            if held:
                self._load[held.pop()] -= 1
            target = url or self._pick()
            self._load[target] += 1
            held.append(target)
            return await self._attempt(method, target + path, **kwargs)

        def avoid(failures: int, exc: RetryableError, pause: float) -> None:
            self._avoid_until[held[-1]] = time.monotonic() + pause
            logger.warning(
                "caption attempt %d failed (%s); retrying in %.1fs", failures, exc, pause
            )

        try:
            return await self._retry.run(attempt, on_retry=avoid, busy_wait_s=self._overload_wait_s)
        except Busy as exc:
            raise CaptionServiceError(
                f"caption service stayed overloaded for {self._overload_wait_s:.0f} s"
            ) from exc
        except RetryableError as exc:
            raise CaptionServiceError(
                f"caption service unavailable after {self._retry.attempts} attempts: {exc}"
            ) from exc
        finally:
            if held:
                self._load[held.pop()] -= 1

    async def info(self, class_hint: bool = False) -> EngineInfo:
        """The engine identity; every replica must report the same one."""
        params = {"class_hint": "true"} if class_hint else {}
        infos = []
        for url in self.urls:
            response = await self._call("GET", "/v1/info", url=url, params=params)
            infos.append(EngineInfo.model_validate(response.json()))
        if any(i != infos[0] for i in infos[1:]):
            raise CaptionServiceError("caption service replicas report different engines/models")
        return infos[0]

    def _read(self, image: ImageRef) -> str:
        """The image's bytes, base64, read through the checked open (shared.files)."""
        assert self._files is not None  # required with send='data'
        data = read_inside_roots(image.path, self._files.roots, self._files.max_bytes)
        return base64.b64encode(data).decode()

    def _payload(
        self, images: list[ImageRef], class_hint: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The request body, and the images that could not be read (id -> why), left out."""
        items: list[dict[str, Any]] = []
        unreadable: dict[str, str] = {}
        for im in images:
            item: dict[str, Any] = {"id": im.id}
            if self._send == "data":
                try:
                    item["data"] = self._read(im)
                except UnreadableFile as exc:
                    unreadable[im.id] = str(exc)
                    continue
            else:
                item["path"] = str(im.path)
            if class_hint:
                item["class_name"] = im.class_name
            items.append(item)
        return {"images": items, "class_hint": class_hint}, unreadable

    async def caption(
        self, images: list[ImageRef], class_hint: bool = False
    ) -> tuple[EngineInfo | None, list[CaptionResult]]:
        """The engine that captioned (None when no image could be sent) and one result per
        image, in order; an image that could not be read is a result with its error."""
        if self._send == "data":
            # Reading the files is blocking I/O: off the event loop.
            payload, unreadable = await asyncio.to_thread(self._payload, images, class_hint)
        else:  # paths only: nothing to wait for, no thread to hand over to
            payload, unreadable = self._payload(images, class_hint)
        by_id = {i: CaptionResult(id=i, error=why) for i, why in unreadable.items()}
        engine = None
        if payload["images"]:
            engine, results = await self._send_batch(payload)
            by_id |= {r.id: r for r in results}
        return engine, [by_id[im.id] for im in images]

    async def _send_batch(self, payload: dict[str, Any]) -> tuple[EngineInfo, list[CaptionResult]]:
        response = await self._call("POST", "/v1/captions", json=payload)
        try:
            # Parsed and checked in one pass of pydantic's own parser, without Python dicts.
            parsed = CaptionResponse.model_validate_json(response.content)
        except ValueError as exc:
            raise CaptionServiceError(f"malformed caption service response: {exc}") from exc
        if [r.id for r in parsed.results] != [item["id"] for item in payload["images"]]:
            raise CaptionServiceError("caption service returned results for other images")
        return parsed.engine, parsed.results
