"""Settings base shared by both services."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.imaging import ImageLimits


def parse_data_roots(value: str) -> list[Path]:
    """Split a colon-separated DATA_ROOTS value into resolved folders (symlinks followed)."""
    roots = [Path(part).expanduser().resolve() for part in value.split(":") if part.strip()]
    if not roots:
        raise ValueError("DATA_ROOTS must name at least one folder")
    return roots


class ServiceSettings(BaseSettings):
    """Environment-driven settings every service has."""

    # A refused value is not repeated in the error: settings hold secrets (keys, passwords).
    model_config = SettingsConfigDict(extra="ignore", env_file=None, hide_input_in_errors=True)

    data_roots: str = Field(
        default="./data",
        description="Colon-separated folders that images and datasets may be read from.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    max_image_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Larger image files are rejected."
    )
    max_image_pixels: int = Field(
        default=80_000_000, ge=1, description="Larger images are rejected (decompression bombs)."
    )
    request_body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for the next part of a request body; a client that stops "
        "sending gets 408 instead of holding its connection and request for good.",
    )

    @field_validator("data_roots")
    @classmethod
    def _roots_not_empty(cls, value: str) -> str:
        parse_data_roots(value)
        return value

    @property
    def data_root_paths(self) -> list[Path]:
        return parse_data_roots(self.data_roots)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)
