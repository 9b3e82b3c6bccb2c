"""LLaVA-1.5 served in-process by vLLM's AsyncLLM (vLLM 0.33 API).

Every image becomes its own concurrent `generate` call: vLLM's continuous batching then packs
the images of all requests in flight into each GPU step. Only this module imports vllm, and
only when the engine is chosen (`pip install .[gpu]`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any, NamedTuple, Protocol

from PIL import Image

from caption_service import prompts
from caption_service.engines.base import (
    EngineDead,
    EngineOutput,
    EngineUnavailable,
    RequestPerImage,
)
from caption_service.settings import CaptionSettings
from shared.caption_contract import EngineInfo

logger = logging.getLogger(__name__)

#: Finish reasons of a finished caption. vLLM also ends a request with "abort" (the engine
#: was paused, or the request aborted elsewhere) and "error" (a retryable engine-side
#: failure): neither is a caption of the image, and the request may be retried.
CAPTION_FINISH_REASONS = frozenset({"stop", "length", "repetition"})
RETRY_FINISH_REASONS = frozenset({"abort", "error"})
RETRY_AFTER_S = 5.0


class AsyncLLMLike(Protocol):
    """The part of vllm.v1.engine.async_llm.AsyncLLM this engine uses."""

    errored: bool

    def generate(
        self, prompt: Any, sampling_params: Any, request_id: str
    ) -> AsyncIterator[Any]: ...

    async def abort(self, request_id: str) -> None: ...

    async def check_health(self) -> None: ...

    def shutdown(self) -> None: ...


def engine_args(settings: CaptionSettings) -> dict[str, Any]:
    """AsyncEngineArgs fields. Built this way vLLM defaults to max_num_seqs 128 and
    max_num_batched_tokens 2048, far below what a GPU can take: both are always set."""
    return {
        "model": settings.caption_model,
        "max_model_len": settings.vllm_max_model_len,
        "limit_mm_per_prompt": {"image": 1},
        "max_num_seqs": settings.vllm_max_num_seqs,
        "max_num_batched_tokens": settings.vllm_max_num_batched_tokens,
        "gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
        "tensor_parallel_size": settings.vllm_tensor_parallel_size,
        "seed": settings.caption_seed,
        **settings.vllm_extra,
    }


def sampling_kwargs(settings: CaptionSettings) -> dict[str, Any]:
    """Greedy and seeded, with an explicit max_tokens (vLLM's default of 16 truncates)."""
    return {
        "temperature": 0.0,
        "max_tokens": settings.caption_max_tokens,
        "seed": settings.caption_seed,
    }


def build_sampling_params(
    settings: CaptionSettings, sampling_params_cls: Any, output_kind_enum: Any
) -> Any:
    """SamplingParams yielding only the final output (one RequestOutput per request)."""
    return sampling_params_cls(**sampling_kwargs(settings), output_kind=output_kind_enum.FINAL_ONLY)


class VllmApi(NamedTuple):
    AsyncLLM: Any
    AsyncEngineArgs: Any
    SamplingParams: Any
    RequestOutputKind: Any


def vllm_api() -> VllmApi:
    """The vLLM classes this engine uses, imported only when the engine is chosen."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    return VllmApi(AsyncLLM, AsyncEngineArgs, SamplingParams, RequestOutputKind)


def _is_engine_dead(exc: BaseException) -> bool:
    # Matched by name so this module imports without vllm (tests use a fake engine).
    return any(cls.__name__ == "EngineDeadError" for cls in type(exc).__mro__)


def _is_transient(exc: BaseException) -> bool:
    """vLLM's errors carry the HTTP status its own server answers them with; 503 means busy or
    paused (QueueOverflowError, MaxQueuedTokensError, RetryableRequestError): retry later,
    the image is not at fault."""
    return any(
        getattr(exc, name, None) == HTTPStatus.SERVICE_UNAVAILABLE
        for name in ("http_status", "status_code")
    )


def llava_request(image: Image.Image, instruction: str) -> dict[str, Any]:
    """One image's prompt as vLLM takes it: a TextPrompt dict (no "type" key, which would
    make vLLM read it as an already rendered input)."""
    return {"prompt": prompts.llava_prompt(instruction), "multi_modal_data": {"image": image}}


def engine_output(final: Any) -> EngineOutput:
    """Our output from the final RequestOutput of one request."""
    if final is None or not final.outputs:
        return EngineOutput(caption=None, error="the engine returned no output")
    completion = final.outputs[0]
    reason = completion.finish_reason
    if reason in RETRY_FINISH_REASONS:
        raise EngineUnavailable(f"vLLM ended the request ({reason})", retry_after=RETRY_AFTER_S)
    if reason not in CAPTION_FINISH_REASONS:
        return EngineOutput(caption=None, error=f"the engine stopped with {reason!r}")
    if not completion.text.strip():
        return EngineOutput(caption=None, error="empty caption from the engine")
    return EngineOutput(
        caption=completion.text.strip(),
        prompt_tokens=len(final.prompt_token_ids or []),
        output_tokens=len(completion.token_ids),
        finish_reason=reason,
    )


class VllmEngine(RequestPerImage):
    short_side: int | None

    def __init__(
        self,
        engine: AsyncLLMLike,
        settings: CaptionSettings,
        make_sampling_params: Callable[[], Any],
    ):
        self._engine = engine
        self._settings = settings
        self._make_params = make_sampling_params
        self.short_side = settings.caption_image_side
        self.max_side = settings.caption_image_side * 3

    @classmethod
    def from_settings(cls, settings: CaptionSettings) -> VllmEngine:
        api = vllm_api()
        engine = api.AsyncLLM.from_engine_args(api.AsyncEngineArgs(**engine_args(settings)))
        params = build_sampling_params(settings, api.SamplingParams, api.RequestOutputKind)
        return cls(engine, settings, lambda: params)

    def info(self, class_hint: bool = False) -> EngineInfo:
        template = prompts.instruction_template(self._settings, class_hint)
        return EngineInfo(
            engine="vllm",
            model=self._settings.caption_model,
            prompt_version=prompts.version_of(prompts.llava_prompt(template)),
            prompt=prompts.llava_prompt(template),
            params={**sampling_kwargs(self._settings), "short_side": self.short_side},
        )

    async def _one(self, image: Image.Image, instruction: str) -> EngineOutput:
        request_id = f"caption-{uuid.uuid4().hex}"
        prompt = llava_request(image, instruction)
        final = None
        try:
            async for output in self._engine.generate(prompt, self._make_params(), request_id):
                final = output  # FINAL_ONLY: one output, the finished one
        except asyncio.CancelledError:
            # The caller went away: free the sequence's KV cache at once.
            await asyncio.shield(self._engine.abort(request_id))
            raise
        except Exception as exc:
            if _is_engine_dead(exc):
                raise EngineDead(f"vLLM engine died: {exc}") from exc
            if _is_transient(exc):
                raise EngineUnavailable(f"vLLM: {exc}", retry_after=RETRY_AFTER_S) from exc
            return EngineOutput(caption=None, error=f"generation failed: {exc}")
        return engine_output(final)

    async def check_health(self) -> None:
        if self._engine.errored:
            raise EngineDead("vLLM engine is dead")
        try:
            await self._engine.check_health()
        except Exception as exc:
            raise EngineDead(f"vLLM engine is unhealthy: {exc}") from exc

    async def close(self) -> None:
        self._engine.shutdown()
