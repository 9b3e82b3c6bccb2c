"""Structured key=value logs carrying the request or job id they belong to."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


def configure_logging(level: str = "INFO", service: str = "app") -> None:
    """Install one stderr handler with a stable, greppable line format."""
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s level=%(levelname)s service={service} logger=%(name)s "
            "request_id=%(request_id)s msg=%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty at INFO (every pg_ctl command line); its warnings still show.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, root.level))


class RequestIdMiddleware:
    """Take the caller's X-Request-ID (a job id, when the worker calls) or mint one.

    Pure ASGI, so client disconnects still reach the endpoint (see the caption router).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(REQUEST_ID_HEADER.lower().encode(), b"")
        # A caller's id is logged and echoed only when it is a plain token: anything else
        # (newlines, control or non-ASCII characters, log-format look-alikes) gets a new id.
        request_id = raw.decode("ascii") if _REQUEST_ID.fullmatch(raw) else uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode(), request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
