"""Bearer tokens on requests (RFC 6750): reading the header and comparing secrets."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import HTTPConnection

from shared.errors import Unauthorized

# A token longer than this is not one any key of these services could be.
MAX_TOKEN_CHARS = 512


def bearer_token(request: HTTPConnection, realm: str) -> str | None:
    """The token of the Authorization header; None without the header. A header that is not
    `Bearer <token>` is refused (401) rather than ignored, so a mistyped scheme is noticed."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized(
            "the Authorization header must be 'Bearer <key>'", realm=realm, error="invalid_request"
        )
    return token


def digest(secret: str) -> bytes:
    """SHA-256 of a secret: compared in place of the secret, so lengths leak nothing."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def same_secret(given: str, expected: str) -> bool:
    """Whether two secrets are equal, in time that does not depend on where they differ."""
    return hmac.compare_digest(digest(given), digest(expected))
