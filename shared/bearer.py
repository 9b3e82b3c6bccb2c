"""Bearer tokens on requests (RFC 6750): reading the header and comparing secrets."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import FastAPI
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


def declare_auth_optional(app: FastAPI) -> None:
    """Publish every operation's Bearer requirement as optional (`security: [{scheme}, {}]`).

    Whether a key is needed is the deployment's choice, and can change while the service runs
    (a key created, CAPTION_API_KEY set): a schema that called the header required would be
    wrong for every open service. The scheme's description says when it is needed; a keyed
    service answers 401 without it, which the schemas declare."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    security = operation.get("security") if isinstance(operation, dict) else None
                    if security and {} not in security:
                        security.append({})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
