"""HTTP routes of the explorer: its pages and their static files. Every route here is behind
the API's key rule (app.py includes this router in `guarded`); sign-in is in auth/pages.py."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from analysis_service.auth.dependencies import Caller, csrf_token
from analysis_service.auth.keys import Principal
from analysis_service.db import Session
from analysis_service.explorer import html, views
from analysis_service.explorer.assets import assets
from analysis_service.explorer.service import PageNotFound, job_target

router = APIRouter(prefix="/ui", include_in_schema=False)
# Query values checked by the page itself (an unknown one is a 404 page, not a JSON 422).
PageParam = Annotated[str | None, Query(max_length=100)]


def _csrf(request: Request, caller: Principal) -> str | None:
    return csrf_token(request.state.session_token) if caller.via == "session" else None


@router.get("", response_class=HTMLResponse)
@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request, caller: Caller) -> HTMLResponse:
    """Every job with its live status, and the form that submits one."""
    main = views.jobs_main(caller.can_write)
    return html.page("Jobs", main, caller, _csrf(request, caller), "jobs.js")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(
    job_id: str,
    request: Request,
    caller: Caller,
    session: Session,
    subpopulation: PageParam = None,
    predictions: PageParam = None,
) -> HTMLResponse:
    """One job: status, structure with thumbnail grids, slices, invalid files, downloads."""
    csrf = _csrf(request, caller)
    try:
        target = await job_target(session, job_id, subpopulation, predictions)
    except PageNotFound as missing:
        return html.not_found(str(missing), caller, csrf)
    data = {
        "job-id": str(target.job_id),
        "job-status": target.status,
        "has-images": str(target.has_images).lower(),
    }
    title = f"Job {target.dataset_path}"
    return html.page(title, views.job_main(target), caller, csrf, "job.js", data)


@router.get("/static/{name}")
async def static_file(name: str, request: Request) -> Response:
    """A shipped JavaScript module or the stylesheet; 304 when the browser's copy is current."""
    found = (await anyio.to_thread.run_sync(assets)).get(name)
    if found is None:
        return Response(status_code=404)
    # Behind the key rule like every /ui route: cached only by this browser, always revalidated.
    headers = {
        "ETag": found.etag,
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.get("/{rest:path}", response_class=HTMLResponse)
async def unknown_page(rest: str, request: Request, caller: Caller) -> HTMLResponse:
    """Any other /ui address: a page that says there is nothing there."""
    message = f"There is no page <code>/ui/{html.shown(rest)}</code>."
    return html.not_found(message, caller, _csrf(request, caller))
