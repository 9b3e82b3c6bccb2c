"""Caption engines, one module per backend: CaptionEngine (handed decoded images) or
ReadsItsFiles (reads its files itself)."""

from __future__ import annotations

from concurrent.futures import Executor

from caption_service.engines.base import AnyEngine
from caption_service.settings import CaptionSettings


def build_engine(settings: CaptionSettings, executor: Executor) -> AnyEngine:
    """Build the configured engine; heavy backends are imported only when chosen."""
    if settings.caption_engine == "pixel":
        from caption_service.engines.pixel import PixelEngine

        return PixelEngine(
            settings.worker_count,
            decode_pixels=settings.max_decode_pixels_in_flight,
            decode_wait_s=settings.caption_decode_wait_s,
        )
    if settings.caption_engine == "vllm":
        from caption_service.engines.vllm_engine import VllmEngine

        return VllmEngine.from_settings(settings)
    if settings.caption_engine == "openai":
        from caption_service.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(settings, executor)
    raise ValueError(f"unknown caption engine {settings.caption_engine!r}")
