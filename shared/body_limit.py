"""A cap on request bodies, enforced before they are buffered.

A declared Content-Length over the cap is answered 413 at once, before a byte of the body is
read; a body sent without one (chunked) is counted as it arrives and refused with a 413 as soon
as it passes the cap. Pure ASGI, so nothing downstream ever holds more than the cap.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import ErrorBody, PayloadTooLarge, render_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, setting: str = "MAX_REQUEST_BYTES"):
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"request body larger than {max_bytes} bytes ({setting})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            body = ErrorBody(error=PayloadTooLarge.code, detail=self.detail)
            await render_error(PayloadTooLarge.status_code, body)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through the framework's body parsing as itself
                    # and is rendered by the error handlers like every other error.
                    raise HTTPException(PayloadTooLarge.status_code, detail=self.detail)
            return message

        await self.app(scope, counting_receive, send)
