"""HTTP helpers shared by every client of a remote service: one reading of what is transient."""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Iterable
from typing import Any

import httpx

from shared.retry import RetryableError

# Worth another attempt: timeouts, conflicts and rate limits, and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every client of this process shares: httpx's own (certifi's
    authorities, or SSL_CERT_FILE / SSL_CERT_DIR), read once. A client made without it reads
    them again, about 20 ms of CPU, and a worker makes a caption client for every shard it
    runs."""
    return httpx.create_ssl_context()


def public_url(url: str) -> str:
    """The URL without what may be a secret (user and password, query string, fragment): the
    form to show, log or store."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


REDACTED = "[redacted]"
# What may be a secret in free text (an error message, a server's error body that echoes the
# request): credentials inside URLs, Authorization values, key and token parameters.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_AUTHORIZATION = re.compile(r"(?i)\b(bearer|basic)(\s+)[a-z0-9._~+/=-]{4,}")
_KEY_PARAMETER = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|token|password|secret)[\"']?\s*[=:]\s*[\"']?)"
    r"[^\s&\"',;}]+"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without what may be a secret: each of `secrets` (an API key, a password) and
    anything that looks like credentials, so that it can be stored, logged or shown."""
    for secret in secrets:
        if len(secret) >= 4:  # shorter ones would blank ordinary words
            text = text.replace(secret, REDACTED)
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = _AUTHORIZATION.sub(rf"\1\2{REDACTED}", text)
    return _KEY_PARAMETER.sub(rf"\1{REDACTED}", text)


def url_secrets(url: str) -> list[str]:
    """The password inside `url`, decoded and as written with its user."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return []
    if not parsed.password:
        return []
    return [parsed.password, parsed.userinfo.decode(errors="replace")]


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
