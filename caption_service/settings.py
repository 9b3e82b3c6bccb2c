"""Caption service settings (environment variables, no prefix)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from shared.openai_chat import ChatEndpoint
from shared.processes import usable_cores
from shared.retry import RetryPolicy
from shared.settings import ServiceSettings

DEFAULT_INSTRUCTION = (
    "Describe this image in detail: the main subject, what it is doing, the background and "
    "setting, lighting, colours and anything unusual."
)
# The reference code's prompt put the class name in; kept as an explicit option for benchmarks.
DEFAULT_CLASS_INSTRUCTION = "Describe the image in detail with the keyword {class_name}."


class CaptionSettings(ServiceSettings):
    caption_engine: Literal["pixel", "vllm", "openai"] = Field(
        default="pixel",
        description="pixel (CPU, offline), vllm (LLaVA in-process on a GPU), openai (any "
        "OpenAI-compatible vision endpoint).",
    )
    caption_max_batch: int = Field(
        default=64, ge=1, description="Most images one POST /v1/captions may carry (413 above)."
    )
    caption_max_in_flight: int = Field(
        default=512,
        ge=1,
        description="Images admitted at once; beyond it requests get 503 with Retry-After.",
    )
    max_request_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest request body (base64 images included); larger ones get 413.",
    )
    caption_workers: int = Field(
        default=0,
        ge=0,
        description="Threads that decode images, and processes that describe them (pixel "
        "engine); 0 means one per core this process may run on.",
    )
    max_decode_pixels_in_flight: int = Field(
        default=320_000_000,
        ge=1,
        description="Pixels all decoding threads may hold at once (4 images at the default "
        "MAX_IMAGE_PIXELS); a larger image is an error of its own.",
    )
    caption_decode_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a decode waits for pixels of that budget before the request is "
        "answered 503 overloaded with Retry-After.",
    )
    caption_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="When set, every request but /healthz and /readyz must send it as a Bearer "
        "token (the analysis service does, from its own CAPTION_API_KEY); unset, only loopback "
        "clients addressing the service by a loopback name are answered.",
    )

    # What the model is asked (vllm and openai engines).
    caption_instruction: str = Field(default=DEFAULT_INSTRUCTION, min_length=1)
    caption_class_instruction: str = Field(
        default=DEFAULT_CLASS_INSTRUCTION,
        description="Used when a request asks for the class hint; must contain {class_name}.",
    )
    caption_max_tokens: int = Field(default=192, ge=1, le=4096)
    caption_seed: int = Field(default=0, ge=0)
    caption_image_side: int = Field(
        default=336, ge=32, description="Images are shrunk so their short side is this (LLaVA)."
    )

    # vllm engine.
    caption_model: str = Field(default="llava-hf/llava-1.5-7b-hf")
    vllm_max_model_len: int = Field(default=4096, ge=256)
    vllm_max_num_seqs: int = Field(default=128, ge=1)
    vllm_max_num_batched_tokens: int = Field(default=16384, ge=256)
    vllm_gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    vllm_tensor_parallel_size: int = Field(default=1, ge=1)
    vllm_extra_args: str = Field(
        default="{}", description="JSON object of further AsyncEngineArgs fields."
    )

    # openai engine.
    caption_openai_base_url: str = Field(default="http://127.0.0.1:11434/v1")
    caption_openai_api_key: SecretStr = Field(default=SecretStr(""))
    caption_openai_model: str = Field(default="llava:7b")
    caption_openai_timeout_s: float = Field(default=120.0, gt=0)
    caption_openai_retries: int = Field(default=5, ge=1)
    caption_openai_retry_base_delay_s: float = Field(default=0.5, ge=0)
    caption_openai_concurrency: int = Field(default=16, ge=1)

    @property
    def worker_count(self) -> int:
        """CAPTION_WORKERS, with 0 read as one per usable core."""
        return self.caption_workers or usable_cores()

    @property
    def caption_openai_endpoint(self) -> ChatEndpoint:
        return ChatEndpoint(
            base_url=self.caption_openai_base_url,
            api_key=self.caption_openai_api_key.get_secret_value(),
            model=self.caption_openai_model,
            timeout_s=self.caption_openai_timeout_s,
            retry=RetryPolicy(
                attempts=self.caption_openai_retries,
                base_delay=self.caption_openai_retry_base_delay_s,
            ),
        )

    @field_validator("caption_class_instruction")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{class_name}" not in value:
            raise ValueError("must contain {class_name}")
        return value

    @field_validator("vllm_extra_args")
    @classmethod
    def _json_object(cls, value: str) -> str:
        if not isinstance(json.loads(value or "{}"), dict):
            raise ValueError("must be a JSON object")
        return value

    @property
    def vllm_extra(self) -> dict[str, Any]:
        return dict(json.loads(self.vllm_extra_args or "{}"))
