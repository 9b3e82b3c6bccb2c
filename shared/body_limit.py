"""A cap on request bodies, enforced before they are buffered, and on how slowly they come.

A declared Content-Length over the cap is answered 413 at once, before a byte of the body is
read; a body sent without one (chunked) is counted as it arrives and refused with a 413 as soon
as it passes the cap. Pure ASGI, so nothing downstream ever holds more than the cap.

Each part of a body must arrive within `timeout_s` of the previous one: a client that declares
a length and stops sending would otherwise hold its connection and its request (and whatever the
request holds, a database session) for as long as it likes. It gets 408.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import ErrorBody, PayloadTooLarge, render_error


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float,
        setting: str = "MAX_REQUEST_BYTES",
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.detail = f"request body larger than {max_bytes} bytes ({setting})"
        self.slow = (
            f"request body not received: nothing arrived for {timeout_s:g} s "
            "(REQUEST_BODY_TIMEOUT_S)"
        )

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
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # what follows is the wait for a disconnect: no deadline
                return await receive()
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for can swallow a cancellation
            # of the caller that arrives as the body does, leaving the task running on.
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, detail=self.slow) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through the framework's body parsing as itself
                    # and is rendered by the error handlers like every other error.
                    raise HTTPException(PayloadTooLarge.status_code, detail=self.detail)
            return message

        await self.app(scope, counting_receive, send)
