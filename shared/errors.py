"""One error body for every endpoint of both services, and the exceptions that map to it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str = Field(
        description="Dotted location of the offending field, e.g. body.dataset_path."
    )
    message: str = Field(description="What is wrong with it.")


class ErrorBody(BaseModel):
    """The shape of every error response."""

    error: str = Field(description="Stable machine-readable error code.")
    detail: str = Field(description="Human-readable explanation.")
    fields: list[FieldError] | None = Field(
        default=None, description="Per-field problems, for validation errors."
    )


class AppError(Exception):
    """Internal error."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.detail = detail or (self.__doc__ or self.code).strip()
        self.retry_after = retry_after
        self.headers = headers or {}
        super().__init__(self.detail)


class Unauthorized(AppError):
    """Authentication is required: send `Authorization: Bearer <key>`."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str | None = None, *, realm: str, error: str | None = None):
        # RFC 6750: the challenge names the realm, and why a token that was sent is refused.
        challenge = f'Bearer realm="{realm}"' + (f', error="{error}"' if error else "")
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class NotFound(AppError):
    """Not found."""

    status_code = 404
    code = "not_found"


class Forbidden(AppError):
    """Forbidden."""

    status_code = 403
    code = "forbidden"


class Gone(AppError):
    """The resource existed and is no longer available as it was."""

    status_code = 410
    code = "gone"


class InvalidRequest(AppError):
    """The request cannot be processed."""

    status_code = 422
    code = "invalid_request"


class PayloadTooLarge(AppError):
    """The request is too large."""

    status_code = 413
    code = "payload_too_large"


class Conflict(AppError):
    """The resource is not in a state that allows this."""

    status_code = 409
    code = "conflict"


class Unavailable(AppError):
    """The service cannot take this request now."""

    status_code = 503
    code = "unavailable"


class Overloaded(Unavailable):
    """The service is at capacity; retry after the delay in Retry-After."""

    code = "overloaded"


ERROR_RESPONSES: dict[int | str, dict] = {
    # 400: a body that is not JSON (or not UTF-8) at all; 422: one that breaks the schema.
    status: {"model": ErrorBody}
    for status in (400, 401, 403, 404, 408, 409, 413, 422, 503)
}


def render_error(
    status: int,
    body: ErrorBody,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _field_name(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def _rendered(exc: AppError) -> JSONResponse:
    return render_error(
        exc.status_code, ErrorBody(error=exc.code, detail=exc.detail), exc.retry_after, exc.headers
    )


def install_error_handlers(
    app: FastAPI, caller_check: Callable[[Request], Awaitable[None]] | None = None
) -> None:
    """Render AppError, validation errors and stray HTTP errors as ErrorBody.

    A body is parsed before a route's dependencies run, so a request that is both unauthorised
    and malformed would learn what is wrong with its body first: caller_check (raising the
    AppError its authorisation would) runs before a 400 or 422 about the request is answered."""

    async def refused_caller(request: Request) -> JSONResponse | None:
        if caller_check is None:
            return None
        try:
            await caller_check(request)
        except AppError as refused:
            return _rendered(refused)
        return None

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return _rendered(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (refused := await refused_caller(request)) is not None:
            return refused
        # The offending input is left out on purpose: it may be large or hold paths.
        fields = [
            FieldError(field=_field_name(err.get("loc", ())), message=err.get("msg", "invalid"))
            for err in exc.errors()
        ]
        detail = "; ".join(f"{f.field}: {f.message}" for f in fields) or "invalid request"
        return render_error(422, ErrorBody(error="validation_error", detail=detail, fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and (refused := await refused_caller(request)) is not None:
            return refused
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            408: "request_timeout",
            413: PayloadTooLarge.code,
        }.get(exc.status_code, "http_error")
        response = render_error(exc.status_code, ErrorBody(error=code, detail=str(exc.detail)))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route with this path only.
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return render_error(500, ErrorBody(error="internal_error", detail="internal error"))
