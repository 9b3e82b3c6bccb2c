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
from caption_service.engines.base import EngineOutput, EngineUnavailable, RequestPerImage
from caption_service.settings import CaptionSettings
from shared.caption_contract import EngineInfo
from shared.http import public_url
from shared.openai_chat import ChatClient, ChatRefused, ChatUnavailable, MalformedCompletion


def _jpeg_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _messages(data_url: str, instruction: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": instruction},
                {"type": "image_url", "image_url": {"url": data_url}},
            ],
        }
    ]


class OpenAIEngine(RequestPerImage):
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
        self._chat = ChatClient(settings.caption_openai_endpoint, transport=transport)
        self._slots = asyncio.Semaphore(settings.caption_openai_concurrency)

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
                "base_url": public_url(self._settings.caption_openai_base_url),
            },
        )

    async def _one(self, image: Image.Image, instruction: str) -> EngineOutput:
        loop = asyncio.get_running_loop()
        data_url = await loop.run_in_executor(self._executor, _jpeg_data_url, image)
        async with self._slots:
            try:
                answer = await self._chat.complete(
                    _messages(data_url, instruction),
                    temperature=0,
                    max_tokens=self._settings.caption_max_tokens,
                    seed=self._settings.caption_seed,
                )
            except ChatUnavailable as exc:
                raise EngineUnavailable(
                    f"caption endpoint {exc}", retry_after=exc.retry_after
                ) from exc
            except ChatRefused as exc:
                return EngineOutput(None, error=f"endpoint refused the image: {exc}")
            except MalformedCompletion as exc:
                return EngineOutput(None, error=f"{exc} from the caption endpoint")
        if not answer.text.strip():
            return EngineOutput(None, error="empty caption from the caption endpoint")
        return EngineOutput(
            caption=answer.text.strip(),
            prompt_tokens=answer.prompt_tokens,
            output_tokens=answer.completion_tokens,
            finish_reason=answer.finish_reason,
        )

    async def check_health(self) -> None:
        return None  # a remote endpoint that is down fails requests with 503 instead

    async def close(self) -> None:
        await self._chat.aclose()
