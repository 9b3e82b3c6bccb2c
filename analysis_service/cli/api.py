"""The analysis API over HTTP, for the command-line client: one method per route it uses, and
two errors: the API said no (ApiError, its body kept as is) or could not be reached."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

DEFAULT_API = "http://127.0.0.1:8000"
# A job that is slow to answer is a loaded server, not a dead one; an unreachable one fails fast.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# An export streams while the server reads pages of images: allow long gaps between chunks,
# and an upload as long as the file takes to send.
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=5.0)


class ApiError(Exception):
    """The API answered with an error; status, code and detail as it sent them."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body
        self.code = str(body.get("error", f"http_{status}"))
        self.detail = str(body.get("detail", ""))
        super().__init__(f"{status} {self.code}: {self.detail}")


class Unreachable(Exception):
    """No answer from the API: refused, timed out, or not HTTP."""


class BadApiUrl(ValueError):
    """--api is not an http(s) URL with a host."""


def check_url(url: str) -> str:
    """The API's base URL without a trailing slash, or BadApiUrl."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadApiUrl(f"--api must be an http(s) URL such as {DEFAULT_API}, not {url!r}")
    return url.rstrip("/")


def segment(value: str) -> str:
    """A user-given id as one path segment: '/', '..' and '?' cannot reach another route."""
    return quote(value, safe="").replace(".", "%2E")


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        return body
    # Not the API's error shape: a proxy's page, say. Enough of it to tell what answered.
    text = response.text.strip().replace("\n", " ")[:200]
    return {"error": f"http_{response.status_code}", "detail": text or response.reason_phrase}


class Api:
    """A session with one analysis API; use as a context manager."""

    def __init__(self, base_url: str, key: str | None = None):
        self.base_url = check_url(base_url)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        try:
            response = self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            message = f"cannot reach the analysis API at {self.base_url}: {reason}"
            raise Unreachable(message) from exc
        if response.is_error:
            if stream:
                response.read()
                response.close()
            raise ApiError(response.status_code, _error_body(response))
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # The API commits a write before it answers: a read sent right after sees it.
        return self._send(self._http.build_request(method, path, **kwargs))

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/jobs", json=body).json()

    def jobs(self, limit: int, offset: int, status: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._call("GET", "/v1/jobs", params=params).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{segment(job_id)}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{segment(job_id)}/cancel").json()

    def retry(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{segment(job_id)}/retry").json()

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/jobs/{segment(job_id)}")

    def structure(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{segment(job_id)}/structure").json()

    def upload_predictions(self, job_id: str, path: Path, name: str | None) -> dict[str, Any]:
        """Post a CSV or JSONL file as multipart; the file is streamed, not read whole."""
        with path.open("rb") as f:
            return self._call(
                "POST",
                f"/v1/jobs/{segment(job_id)}/predictions/upload",
                files={"file": (path.name, f)},
                data={"name": name} if name else None,
                timeout=TRANSFER_TIMEOUT,
            ).json()

    def slices(self, job_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{segment(job_id)}/slices", params=params).json()

    @contextmanager
    def export(self, job_id: str, fmt: str) -> Iterator[httpx.Response]:
        """The export's response, open for streaming its body."""
        request = self._http.build_request(
            "GET",
            f"/v1/jobs/{segment(job_id)}/export",
            params={"format": fmt},
            timeout=TRANSFER_TIMEOUT,
        )
        response = self._send(request, stream=True)
        try:
            yield response
        finally:
            response.close()


def read_chunks(response: httpx.Response, base_url: str) -> Iterator[bytes]:
    """A streamed body's chunks; a connection lost midway is Unreachable, not a traceback."""
    try:
        yield from response.iter_bytes()
    except httpx.TransportError as exc:
        raise Unreachable(f"the analysis API at {base_url} stopped answering: {exc}") from exc
