"""HTTP helpers shared by every client of a remote service: one reading of what is transient."""

from __future__ import annotations

from typing import Any

import httpx

from shared.retry import RetryableError

# Worth another attempt: timeouts, conflicts and rate limits, and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def public_url(url: str) -> str:
    """The URL without what may be a secret (user and password, query string, fragment): the
    form to show, log or store."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (the HTTP-date form is not used by these servers)."""
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    retryable: frozenset[int] = RETRYABLE_STATUS,
    **kwargs: Any,
) -> httpx.Response:
    """One request; transport failures and retryable statuses raise RetryableError."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise RetryableError(f"{public_url(url)}: {type(exc).__name__}: {exc}") from exc
    if response.status_code in retryable:
        raise RetryableError(
            f"{public_url(url)}: HTTP {response.status_code}: {response.text[:200]}",
            retry_after(response),
        )
    return response
