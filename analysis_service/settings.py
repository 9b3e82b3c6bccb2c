"""Analysis service and worker settings (environment variables, no prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from analysis_service.auth.keys import EnvKey, parse_env_keys
from shared.openai_chat import ChatEndpoint
from shared.processes import usable_cores
from shared.retry import RetryPolicy
from shared.settings import ServiceSettings


class DiscoverySteps(BaseModel):
    """The parameters of the SSD-LLM steps inside discovery (dimensions, attributes,
    refinement, assignment); defaults are the reference code's. AnalysisSettings reads them
    from the environment; `AnalysisSettings.discovery_steps` applies a job's choice on top."""

    dimension_rounds: int = Field(default=10, ge=1)
    dimension_captions: int = Field(default=20, ge=1)
    dimension_threshold: float = Field(default=0.2, ge=0, le=1)
    dimensions_per_round: int = Field(default=5, ge=1)
    attribute_rounds: int = Field(default=20, ge=1)
    attribute_captions: int = Field(default=20, ge=1)
    max_attributes: int = Field(default=10, ge=2)
    refine_rounds: int = Field(default=20, ge=0)
    refine_repeats: int = Field(default=3, ge=2)
    saturation_rounds: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="Rounds above are maxima: a loop stops once this many consecutive rounds "
        "changed nothing it would select, or once its selection cannot change "
        "(reasoners/saturation.py); 0: every round runs, as in the reference code.",
    )
    assign_captions_per_call: int = Field(
        default=40, ge=1, description="Captions per assignment call (all dimensions at once)."
    )
    assignment_mode: Literal["batched", "per_image_dimension"] = Field(
        default="batched",
        description="'per_image_dimension' reproduces the reference code: one call each.",
    )


class AnalysisSettings(ServiceSettings, DiscoverySteps):
    database_url: str | None = Field(
        default=None,
        description="Postgres URL. Unset: an embedded Postgres is started under STATE_DIR.",
    )
    state_dir: Path = Field(
        default=Path(".state"), description="Where the embedded Postgres lives."
    )
    thumbnail_cache_bytes: int = Field(
        default=1 << 30,
        ge=1 << 20,
        description="Disk the thumbnail cache under STATE_DIR may use; past it the least "
        "recently read thumbnails are removed.",
    )
    caption_urls: str = Field(
        default="http://127.0.0.1:8001",
        description="Comma-separated caption service base URLs; batches are spread over them.",
    )
    caption_batch_size: int = Field(default=32, ge=1, le=1024)
    caption_concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Caption requests in flight per shard runner and replica.",
    )
    caption_overload_wait_s: float = Field(
        default=1800.0, gt=0, description="How long a job waits out an overloaded service."
    )
    caption_timeout_s: float = Field(default=300.0, gt=0)
    caption_retry_attempts: int = Field(default=6, ge=1)
    caption_retry_base_delay_s: float = Field(default=0.5, ge=0)
    caption_retry_max_delay_s: float = Field(default=20.0, ge=0)
    caption_send: Literal["path", "data"] = Field(
        default="path",
        description="'path' when the caption service sees the same files; 'data' sends bytes.",
    )
    caption_api_key: SecretStr = Field(
        default=SecretStr(""), description="Sent to the caption service as a Bearer token."
    )
    analysis_api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated API keys with write scope, each `key` or `name:key`; "
        "with these or any stored key, every /v1 and /ui request needs one.",
    )
    key_daily_tokens: int = Field(
        default=0,
        ge=0,
        description="LLM tokens (prompt and completion) the jobs of one API key may spend in "
        "any 24 hours, unless the key has its own cap; 0: no cap.",
    )
    ui_session_ttl_s: float = Field(
        default=43200.0, gt=0, le=30 * 86400, description="How long an explorer sign-in lasts."
    )
    ingest_batch_size: int = Field(default=2000, ge=1)
    scan_chunk_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="How long a scanning process may take over its share of a batch (a chunk "
        "of up to INGEST_BATCH_SIZE / SCAN_PROCESSES files); past it the process is killed and "
        "the chunk's files are read one part at a time to find the file that never finishes.",
    )
    scan_processes: int = Field(
        default=0,
        ge=0,
        description="Processes each worker reads, hashes and validates files in (Python holds "
        "one process's GIL for much of it); 0 means one per core this process may run on.",
    )
    shard_size: int = Field(
        default=1000,
        ge=1,
        description="Files (scan) or images (caption) per shard of a job; each shard is a "
        "queued task any worker may run.",
    )
    assign_batch_size: int = Field(default=1000, ge=1)
    discovery_sample_size: int = Field(
        default=2000, ge=10, description="Captions per class the reasoner proposes from."
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest request body; larger get 413."
    )
    api_db_connections: int = Field(
        default=15,
        ge=1,
        le=1000,
        description="Postgres connections the API keeps open; requests beyond that many at "
        "once wait for one.",
    )
    worker_concurrency: int = Field(default=2, ge=1)
    worker_stalled_after_s: float = Field(
        default=30.0, gt=0, description="A worker silent this long is dead; its jobs are retried."
    )
    # LLM reasoner: set LLM_BASE_URL to use it; without it the offline reasoner runs.
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1."
    )
    llm_api_key: SecretStr = Field(default=SecretStr(""), description="Sent as a Bearer token.")
    llm_model: str = Field(default="gpt-4o-mini")
    llm_timeout_s: float = Field(default=120.0, gt=0)
    llm_retries: int = Field(default=5, ge=1)
    llm_retry_base_delay_s: float = Field(default=1.0, ge=0)
    llm_concurrency: int = Field(default=8, ge=1, description="LLM requests in flight per job.")
    llm_max_tokens: int = Field(default=2048, ge=16)

    @field_validator("analysis_api_keys")
    @classmethod
    def _keys_parse(cls, value: SecretStr) -> SecretStr:
        parse_env_keys(value.get_secret_value())  # a bad entry stops the service at start
        return value

    @property
    def env_api_keys(self) -> list[EnvKey]:
        return parse_env_keys(self.analysis_api_keys.get_secret_value())

    @property
    def llm_in_use(self) -> str | None:
        """The LLM that discovery asks, or None when the offline reasoner runs."""
        return self.llm_model if self.llm_base_url else None

    def discovery_steps(
        self, assignment_mode: str | None = None, saturation_rounds: int | None = None
    ) -> DiscoverySteps:
        """The steps' parameters, with a job's own assignment_mode and saturation_rounds
        winning."""
        values = self.model_dump(include=set(DiscoverySteps.model_fields))
        if assignment_mode:
            values["assignment_mode"] = assignment_mode
        if saturation_rounds is not None:
            values["saturation_rounds"] = saturation_rounds
        return DiscoverySteps.model_validate(values)

    @property
    def scan_process_count(self) -> int:
        """SCAN_PROCESSES, with 0 read as one per usable core."""
        return self.scan_processes or usable_cores()

    @property
    def caption_url_list(self) -> list[str]:
        return [u.strip().rstrip("/") for u in self.caption_urls.split(",") if u.strip()]

    @property
    def caption_retry(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.caption_retry_attempts,
            base_delay=self.caption_retry_base_delay_s,
            max_delay=self.caption_retry_max_delay_s,
        )

    @property
    def llm_retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.llm_retries, base_delay=self.llm_retry_base_delay_s)

    @property
    def llm_endpoint(self) -> ChatEndpoint:
        if not self.llm_base_url:
            raise ValueError("LLM_BASE_URL is not set")
        return ChatEndpoint(
            base_url=self.llm_base_url,
            api_key=self.llm_api_key.get_secret_value(),
            model=self.llm_model,
            timeout_s=self.llm_timeout_s,
            retry=self.llm_retry,
        )
