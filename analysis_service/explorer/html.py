"""The explorer's HTML: a shell per page (header, who is signed in, where the page's script
finds its data) that the JavaScript modules of static/ fill from the JSON API.

No inline script or style: the policy below allows only this site's files, so a value that
slipped through escaping still could not run. Every value shown is escaped."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

from analysis_service.auth.dependencies import CSRF_FIELD
from analysis_service.auth.keys import Principal

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # Not no-referrer: under it a browser sends `Origin: null` with its own same-site form and
    # fetch POSTs, which the cross-site check then refuses. same-origin keeps the Origin (and
    # the referrer) for this site and sends neither elsewhere.
    "Referrer-Policy": "same-origin",
}
# The longest piece of a URL a page repeats back (an unknown id, say).
SHOWN_CHARS = 80


def shown(value: str) -> str:
    """A value from a URL, cut short and escaped, for a page to say what it did not find."""
    return escape(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…")


def _attributes(data: dict[str, str]) -> str:
    return "".join(f' data-{name}="{escape(value)}"' for name, value in data.items())


def _who(caller: Principal, csrf: str | None) -> str:
    if caller.via == "open":
        return '<p class="who">No API key is configured: this API is open to loopback clients.</p>'
    who = (
        f"<span>Signed in as <strong>{escape(caller.name or '')}</strong> "
        f"({escape(caller.scope)}).</span>"
    )
    if csrf is not None:
        who += (
            '<form method="post" action="/ui/logout">'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">'
            '<button type="submit" class="link">Sign out</button></form>'
        )
    return f'<div class="who">{who}</div>'


def page(
    title: str,
    main: str,
    caller: Principal,
    csrf: str | None,
    script: str | None = None,
    data: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A page of the explorer: its header, `main`, and the page's module with its data."""
    data = {**(data or {}), "csrf": csrf or "", "can-write": str(caller.can_write).lower()}
    module = f'<script type="module" src="/ui/static/{script}"></script>' if script else ""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)} · Subpopulation discovery</title>"
        f'<link rel="stylesheet" href="/ui/static/explorer.css">{module}</head>'
        f"<body{_attributes(data)}>"
        '<header class="top"><a class="brand" href="/ui">Subpopulation discovery</a>'
        '<nav><a href="/ui">Jobs</a><a href="/docs">API reference</a></nav>'
        f"{_who(caller, csrf)}</header>"
        f'<main id="main">{main}</main></body></html>'
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def not_found(message: str, caller: Principal, csrf: str | None) -> HTMLResponse:
    """What an explorer URL naming something that does not exist gets: a page saying so."""
    main = (
        f'<section class="notice"><h1>Not found</h1><p>{message}</p>'
        '<p><a href="/ui">See all jobs</a></p></section>'
    )
    return page("Not found", main, caller, csrf, status=404)
