"""A small OpenAI-compatible chat-completions server on loopback, with faults on demand.

Speaks the real protocol over real HTTP (uvicorn in a thread). Token rule: prompt tokens are
the words of the text parts plus 576 per image; completion tokens are the words of the answer.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

IMAGE_TOKENS = 576
#: The faults answered with an error instead of a completion: status and message.
_FAILURES = {"429": (429, "rate limited"), "500": (500, "boom"), "400": (400, "invalid image")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChatServer:
    """`faults` is a list consumed one per request: 'ok', '429', '500', 'timeout', '400',
    'malformed' (no choices), 'badjson' (prose instead of JSON), 'outside' (see transform);
    `answer` turns the request body into the assistant's text; `reject_modes` lists the
    response_format types answered with 400, as servers without structured output do."""

    def __init__(self, answer: Callable[[dict[str, Any]], str] | None = None, delay_s: float = 0):
        self.faults: list[str] = []
        self.reject_modes: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answer = answer or (lambda body: "A photo of a dog on the grass.")
        self.delay_s = delay_s
        self.timeout_sleep_s = 5.0
        self.retry_after = "0"  # the Retry-After header of a 429
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = FastAPI()
        app.post("/v1/chat/completions")(self._completions)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if (refused := self._refused_mode(body)) is not None:
            return refused
        fault = self.faults.pop(0) if self.faults else "ok"
        if (failed := _FAILURES.get(fault)) is not None:
            return self._failure(*failed)
        await self._wait(fault)
        if fault == "malformed":
            return JSONResponse({"choices": []})
        text, finish_reason = self.limited(body, self._reply(body, fault))
        return self._completion(body, text, finish_reason)

    def _refused_mode(self, body: dict[str, Any]) -> JSONResponse | None:
        """The 400 of a server without the requested response_format type."""
        mode = (body.get("response_format") or {}).get("type")
        if mode not in self.reject_modes:
            return None
        return JSONResponse(
            {"error": {"message": f"response_format type {mode} is not supported"}}, 400
        )

    def _failure(self, status: int, message: str) -> JSONResponse:
        headers = {"Retry-After": self.retry_after} if status == 429 else None
        return JSONResponse({"error": {"message": message}}, status, headers)

    async def _wait(self, fault: str) -> None:
        if fault == "timeout":
            await asyncio.sleep(self.timeout_sleep_s)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    def _reply(self, body: dict[str, Any], fault: str) -> str:
        text = self.answer(body)
        if fault == "badjson":
            return "Sure! Here is what I found: the answer is {not json at all"
        if fault == "outside":
            return self.transform_outside(text)
        return text

    def limited(self, body: dict[str, Any], text: str) -> tuple[str, str]:
        """The answer as sent, and its finish_reason: all of it ('stop') here; a server that
        counts tokens cuts it at the request's max_tokens ('length')."""
        return text, "stop"

    def _completion(self, body: dict[str, Any], text: str, finish_reason: str) -> JSONResponse:
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": self.usage(body, text),
            }
        )

    def transform_outside(self, text: str) -> str:
        return text

    def usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        """Words of the text parts plus 576 per image; words of the answer."""
        parts = body["messages"][-1]["content"]
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        words = sum(len(p["text"].split()) for p in parts if p.get("type") == "text")
        images = sum(1 for p in parts if p.get("type") == "image_url")
        prompt = words + IMAGE_TOKENS * images
        return {
            "prompt_tokens": prompt,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt + len(text.split()),
        }

    def __enter__(self) -> ChatServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("chat server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
