"""Explorer sign-in: a form exchanging an API key for a session cookie, and sign-out. Browsers
cannot send a Bearer header with pages and <img> thumbnails; the HttpOnly, SameSite=Strict
cookie set here is accepted wherever a key is.

Plain HTML with no external assets or scripts; every value shown is escaped."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from html import escape

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from analysis_service.auth import repository
from analysis_service.auth.dependencies import (
    SESSION_COOKIE,
    check_csrf,
    check_same_origin,
    form_fields,
    gate_of,
    key_principal,
    session_principal,
)
from analysis_service.auth.keys import token_hash
from analysis_service.db import Session
from analysis_service.deps import Settings
from shared.errors import ErrorBody, Unauthorized, render_error

# /ui/login and /ui/logout check what they need themselves (the form's key; the session and its
# CSRF token): every other /ui page is the explorer's (explorer/router.py), behind the rule.
sign_in = APIRouter(prefix="/ui", include_in_schema=False)

HEADERS = {
    # Nothing but this page's own inline style; no framing (clickjacking); not cached.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    # Not no-referrer: under it a browser sends `Origin: null` with its own same-site form and
    # fetch POSTs, which the cross-site check then refuses. same-origin keeps the Origin (and
    # the referrer) for this site and sends neither elsewhere.
    "Referrer-Policy": "same-origin",
}
STYLE = (
    "body{font-family:sans-serif;max-width:56em;margin:2em auto;padding:0 1em}"
    "td,th{padding:.2em .6em;text-align:left}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _login_form(message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p role="alert">{escape(message)}</p>' if message else ""
    return _page(
        "Sign in",
        f'{note}<form method="post" action="/ui/login">'
        '<label>API key <input type="password" name="key" autocomplete="off" required></label> '
        '<button type="submit">Sign in</button></form>',
        status,
    )


@sign_in.get("/login", response_class=HTMLResponse)
async def login_form() -> HTMLResponse:
    return _login_form()


@sign_in.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: Session, settings: Settings) -> Response:
    """Exchange an API key for a session; its cookie carries a token stored only hashed."""
    check_same_origin(request)  # no signing a victim's browser into someone else's session
    key = (await form_fields(request)).get("key", "").strip()
    if not key:
        return _login_form("Enter an API key.", 422)
    principal = await key_principal(session, gate_of(request), key)
    if principal is None or principal.name is None:
        return _login_form("Unknown or revoked API key.", 401)
    await repository.end_expired_sessions(session)
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=settings.ui_session_ttl_s)
    await repository.add_session(
        session, token_hash(token), token_hash(key), principal.name, principal.scope, expires
    )
    response = RedirectResponse("/ui", status_code=303, headers=HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.ui_session_ttl_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@sign_in.post("/logout")
async def logout(request: Request, session: Session) -> Response:
    """End the session server-side and clear the cookie. Any key scope may sign out, so this
    route checks the session and its CSRF token itself rather than the write rule."""
    check_same_origin(request)
    signed_in = await session_principal(request, session, gate_of(request))
    if signed_in is not None:
        token = signed_in[1]
        await check_csrf(request, token)
        await repository.end_session(session, token_hash(token))
    response = RedirectResponse("/ui/login", status_code=303, headers=HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def install_sign_in_redirect(app: FastAPI) -> None:
    """A browser asking for a /ui page without a session is sent to the sign-in form; API
    clients keep the 401 with its WWW-Authenticate challenge."""

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> Response:
        if request.method == "GET" and request.url.path.startswith("/ui"):
            return RedirectResponse("/ui/login", status_code=303, headers=HEADERS)
        body = ErrorBody(error=exc.code, detail=exc.detail)
        return render_error(exc.status_code, body, headers=exc.headers)
