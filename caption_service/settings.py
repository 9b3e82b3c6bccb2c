"""Caption service settings (environment variables, no prefix)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.imaging import ImageLimits
from shared.settings import ServiceSettings


class CaptionSettings(ServiceSettings):
    caption_engine: Literal["pixel"] = Field(
        default="pixel", description="Which engine writes captions: 'pixel' (CPU, offline)."
    )
    caption_max_batch: int = Field(
        default=64, ge=1, description="Most images one POST /v1/captions may carry."
    )
    caption_workers: int = Field(
        default=0, ge=0, description="Threads for image decoding; 0 means one per CPU core."
    )
    max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=80_000_000, ge=1)

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels)
