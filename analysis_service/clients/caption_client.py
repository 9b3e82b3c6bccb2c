"""Client of the caption service(s): batches spread over replicas, retries with back-off."""

from __future__ import annotations

import base64
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.caption_contract import CaptionResponse, CaptionResult, EngineInfo
from shared.logging import REQUEST_ID_HEADER
from shared.retry import RetryableError, RetryPolicy

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class CaptionServiceError(RuntimeError):
    """The caption service could not caption a batch; the message says why."""


@dataclass(frozen=True)
class ImageRef:
    id: str
    path: Path


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class CaptionClient:
    """Round-robins batches over the configured caption service URLs."""

    def __init__(
        self,
        urls: list[str],
        *,
        retry: RetryPolicy,
        timeout_s: float = 300.0,
        send: str = "path",
        request_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not urls:
            raise ValueError("at least one caption service URL is needed")
        self.urls = urls
        self._next_url = itertools.cycle(urls)
        self._retry = retry
        self._send = send
        headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CaptionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        """One attempt; transient failures become RetryableError, others CaptionServiceError."""
        try:
            response = await self._http.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise RetryableError(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code in RETRYABLE_STATUS:
            raise RetryableError(
                f"{url}: HTTP {response.status_code}: {response.text[:200]}",
                retry_after=_retry_after(response),
            )
        if response.status_code >= 400:
            raise CaptionServiceError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
        return response

    async def _with_retries(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        def log_retry(attempt: int, exc: RetryableError, pause: float) -> None:
            logger.warning(
                "caption service attempt %d failed (%s); retrying in %.1fs", attempt, exc, pause
            )

        async def attempt() -> httpx.Response:
            # Each attempt may go to another replica: a dead one should not sink the batch.
            return await self._request(method, next(self._next_url) + path, **kwargs)

        try:
            return await self._retry.run(attempt, on_retry=log_retry)
        except RetryableError as exc:
            raise CaptionServiceError(
                f"caption service unavailable after {self._retry.attempts} attempts: {exc}"
            ) from exc

    async def info(self) -> EngineInfo:
        """The engine identity; every replica must report the same one."""
        infos = []
        for url in self.urls:

            async def get_info(url: str = url) -> httpx.Response:
                return await self._request("GET", url + "/v1/info")

            try:
                response = await self._retry.run(get_info)
            except RetryableError as exc:
                raise CaptionServiceError(
                    f"caption service unavailable after {self._retry.attempts} attempts: {exc}"
                ) from exc
            infos.append(EngineInfo.model_validate(response.json()))
        if any(i != infos[0] for i in infos[1:]):
            raise CaptionServiceError("caption service replicas report different engines/models")
        return infos[0]

    def _payload(self, images: list[ImageRef]) -> dict:
        if self._send == "data":
            items = [
                {"id": im.id, "data": base64.b64encode(im.path.read_bytes()).decode()}
                for im in images
            ]
        else:
            items = [{"id": im.id, "path": str(im.path)} for im in images]
        return {"images": items}

    async def caption(self, images: list[ImageRef]) -> tuple[EngineInfo, list[CaptionResult]]:
        response = await self._with_retries("POST", "/v1/captions", json=self._payload(images))
        try:
            parsed = CaptionResponse.model_validate(response.json())
        except ValueError as exc:
            raise CaptionServiceError(f"malformed caption service response: {exc}") from exc
        if [r.id for r in parsed.results] != [im.id for im in images]:
            raise CaptionServiceError("caption service returned results for other images")
        return parsed.engine, parsed.results
