"""Any OpenAI-compatible chat endpoint with image input: `vllm serve`, Ollama, LM Studio,
hosted APIs. Images go as base64 JPEG data URLs; decoding is greedy (temperature 0)."""

from __future__ import annotations

import asyncio
import base64
import io
from concurrent.futures import Executor
from typing import Any

import httpx
from PIL import Image

from caption_service import prompts
from caption_service.engines.base import EngineOutput, EngineUnavailable
from caption_service.settings import CaptionSettings
from shared.caption_contract import EngineInfo
from shared.http import send
from shared.retry import RetryableError, RetryPolicy


def _jpeg_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


class OpenAIEngine:
    def __init__(
        self,
        settings: CaptionSettings,
        executor: Executor,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._settings = settings
        self._executor = executor
        self.short_side: int | None = settings.caption_image_side
        self.max_side = settings.caption_image_side * 3
        key = settings.caption_openai_api_key.get_secret_value()
        self._http = httpx.AsyncClient(
            base_url=settings.caption_openai_base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(settings.caption_openai_timeout_s, connect=10.0),
            transport=transport,
        )
        self._slots = asyncio.Semaphore(settings.caption_openai_concurrency)
        self._retry = RetryPolicy(
            attempts=settings.caption_openai_retries,
            base_delay=settings.caption_openai_retry_base_delay_s,
        )

    def info(self, class_hint: bool = False) -> EngineInfo:
        template = prompts.instruction_template(self._settings, class_hint)
        return EngineInfo(
            engine="openai",
            model=self._settings.caption_openai_model,
            prompt_version=prompts.version_of(template),
            prompt=template,
            params={
                "temperature": 0,
                "max_tokens": self._settings.caption_max_tokens,
                "seed": self._settings.caption_seed,
                "short_side": self.short_side,
                "base_url": self._settings.caption_openai_base_url,
            },
        )

    def _body(self, data_url: str, instruction: str) -> dict[str, Any]:
        return {
            "model": self._settings.caption_openai_model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": instruction},
                        {"type": "image_url", "image_url": {"url": data_url}},
                    ],
                }
            ],
            "temperature": 0,
            "max_tokens": self._settings.caption_max_tokens,
            "seed": self._settings.caption_seed,
        }

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        return await send(self._http, "POST", "/chat/completions", json=body)

    async def _one(self, image: Image.Image, instruction: str) -> EngineOutput:
        loop = asyncio.get_running_loop()
        data_url = await loop.run_in_executor(self._executor, _jpeg_data_url, image)
        body = self._body(data_url, instruction)
        async with self._slots:
            try:
                response = await self._retry.run(lambda: self._post(body))
            except RetryableError as exc:
                raise EngineUnavailable(
                    f"caption endpoint unavailable after {self._retry.attempts} attempts: {exc}",
                    retry_after=exc.retry_after,
                ) from exc
        if response.status_code >= 400:
            return EngineOutput(
                None,
                error=f"endpoint refused the image: HTTP "
                f"{response.status_code}: {response.text[:200]}",
            )
        return self._parse(response)

    @staticmethod
    def _parse(response: httpx.Response) -> EngineOutput:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return EngineOutput(None, error="malformed answer from the caption endpoint")
        if not isinstance(text, str) or not text.strip():
            return EngineOutput(None, error="empty caption from the caption endpoint")
        usage = payload.get("usage") or {}
        return EngineOutput(
            caption=text.strip(),
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
        )

    async def caption(
        self, images: list[Image.Image], instructions: list[str]
    ) -> list[EngineOutput]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._one(im, ins))
                    for im, ins in zip(images, instructions, strict=True)
                ]
        except BaseExceptionGroup as group_error:
            # One unreachable endpoint fails the batch; raise that error itself.
            raise group_error.exceptions[0] from None
        return [t.result() for t in tasks]

    async def check_health(self) -> None:
        return None  # a remote endpoint that is down fails requests with 503 instead

    async def close(self) -> None:
        await self._http.aclose()
