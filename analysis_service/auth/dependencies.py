"""Who is calling, for every /v1 and /ui route: a Bearer key, or an explorer session cookie
(with cross-site checks on what changes state), or nobody when no key is configured.

The rule is applied by router-level dependencies (app.py), so a route cannot forget it, and
scope follows the HTTP method: GET, HEAD and OPTIONS read; every other method needs write."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from analysis_service.auth import repository
from analysis_service.auth.exposure import HOW_TO_ADD_A_KEY
from analysis_service.auth.keys import (
    OPEN,
    EnvKey,
    Principal,
    Scope,
    match_env_key,
    token_hash,
)
from analysis_service.db import Session
from shared.bearer import MAX_TOKEN_CHARS, bearer_token
from shared.errors import Forbidden, PayloadTooLarge, Unauthorized
from shared.loopback import require_this_machine

REALM = "subpop analysis"
SESSION_COOKIE = "subpop_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How long the answer to "is any stored key active?" is reused: a key created with the command
# line takes effect within this, without a restart, and requests do not each ask the database.
CONFIGURED_CACHE_S = 5.0
MAX_FORM_BYTES = 16 * 1024  # sign-in and sign-out forms are a few fields


class AuthGate:
    """The keys of ANALYSIS_API_KEYS, and a short-lived memory of whether stored keys exist."""

    def __init__(
        self,
        env_keys: list[EnvKey],
        cache_s: float = CONFIGURED_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.env_keys = env_keys
        self._env_hashes = frozenset(k.key_hash for k in env_keys)
        self._cache_s = cache_s
        self._clock = clock
        self._stored: bool | None = None
        self._checked_at = 0.0

    def is_env_key(self, key_hash: str) -> bool:
        return key_hash in self._env_hashes

    async def keys_configured(self, session: Session) -> bool:
        """Whether any key exists, so that requests without one are refused."""
        if self.env_keys:
            return True
        now = self._clock()
        if self._stored is None or now - self._checked_at >= self._cache_s:
            self._stored = await repository.any_active_key(session)
            self._checked_at = now
        return self._stored


def gate_of(request: Request) -> AuthGate:
    return request.app.state.auth


async def key_principal(session: Session, gate: AuthGate, key: str) -> Principal | None:
    """The principal of an API key (ANALYSIS_API_KEYS, then the stored ones), or None."""
    found = match_env_key(key, gate.env_keys)
    if found is not None:
        return Principal(found.name, Scope.WRITE, "bearer")
    stored = await repository.active_key(session, token_hash(key))
    return Principal(stored.name, Scope(stored.scope), "bearer") if stored else None


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from its cookie, which other sites cannot read, so
    nothing more is stored; pages put it in forms, scripts send it as X-CSRF-Token."""
    return hmac.new(session_token.encode(), b"csrf", hashlib.sha256).hexdigest()


async def session_principal(
    request: Request, session: Session, gate: AuthGate
) -> tuple[Principal, str] | None:
    """The principal and token of a live session cookie; None without one. A session ends
    with its key: revoked, or no longer among ANALYSIS_API_KEYS."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    row = await repository.live_session(session, token_hash(token))
    if row is None or not (row.stored_key_active or gate.is_env_key(row.key_hash)):
        return None
    return Principal(row.key_name, Scope(row.scope), "session"), token


async def form_fields(request: Request) -> dict[str, str]:
    """A small urlencoded form body (the first value of each field); 413 when it is large."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"a form body is limited to {MAX_FORM_BYTES} bytes")
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=32)
    return {name: values[0] for name, values in parsed.items()}


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request a browser says comes from another site (Fetch metadata
    first, then Origin against the Host it was sent to)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site: {site[:32]})")
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "").lower()
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        netloc = ""
    if origin == "null" or not netloc or netloc != host:
        raise Forbidden("cross-site request refused: its Origin is not this site")


async def check_csrf(request: Request, session_token: str) -> None:
    """The session's CSRF token must come with the request, as X-CSRF-Token or a form field."""
    given = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if given is None and content_type.startswith("application/x-www-form-urlencoded"):
        given = (await form_fields(request)).get(CSRF_FIELD)
    expected = csrf_token(session_token)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(
            f"missing or wrong CSRF token: a request signed in by cookie that changes state "
            f"must carry {CSRF_HEADER} (or the form field {CSRF_FIELD})"
        )


async def identify(request: Request, session: Session) -> Principal:
    """Who is calling (authentication only). A Bearer key wins over a session cookie; a wrong
    key is refused even when none is configured, so a mistake is not silently ignored."""
    gate = gate_of(request)
    key = bearer_token(request, REALM)
    if key is not None:
        principal = await key_principal(session, gate, key)
        if principal is None:
            raise Unauthorized("unknown or revoked API key", realm=REALM, error="invalid_token")
        return principal
    signed_in = await session_principal(request, session, gate)
    if signed_in is not None:
        request.state.session_token = signed_in[1]
        return signed_in[0]
    if await gate.keys_configured(session):
        raise Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>', or sign in at /ui/login",
            realm=REALM,
        )
    require_this_machine(request, "no API key is configured, so this API", HOW_TO_ADD_A_KEY)
    return OPEN


# Declares the Bearer scheme in the OpenAPI schema (the Authorize button of /docs); the
# header itself is read by `identify`, which refuses a malformed one instead of ignoring it.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    description='An API key (ANALYSIS_API_KEYS, or one made by `make keys ARGS="create ..."`): '
    "required on every /v1 and /ui route once any key is configured; a service with none "
    "answers loopback clients only.",
)


def check_scope(principal: Principal, method: str) -> None:
    """A method that changes state (anything but GET, HEAD, OPTIONS) needs write scope."""
    if not principal.can_write:
        raise Forbidden(
            f"the key '{principal.name}' is read-only; {method} needs a key with write scope"
        )


async def authorize(
    request: Request,
    session: Session,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """The router-level dependency of every /v1 and /ui route: identify the caller, refuse
    cross-site state changes not made with a Bearer key, and refuse writes to read keys."""
    principal = await identify(request, session)
    request.state.principal = principal
    if request.method in SAFE_METHODS:
        return principal
    if principal.via != "bearer":
        check_same_origin(request)
    if principal.via == "session":
        await check_csrf(request, request.state.session_token)
    check_scope(principal, request.method)
    return principal


Caller = Annotated[Principal, Depends(authorize)]


async def check_caller_of_refused_request(request: Request) -> None:
    """What `authorize` decides of the caller (identity and scope; the CSRF check needs the
    body, which is what failed), for a request refused before its dependencies ran: a body
    that is malformed or breaks the schema. Routes that do not need a key are left alone."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not any(d.call is authorize for d in dependant.dependencies):
        return
    async with request.app.state.sessionmaker() as session:
        principal = await identify(request, session)
    if request.method not in SAFE_METHODS:
        check_scope(principal, request.method)
