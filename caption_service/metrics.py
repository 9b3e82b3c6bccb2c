"""Prometheus metrics of the caption service (process-wide default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

IMAGES = Counter(
    "caption_images_total", "Images processed by the caption service.", ["engine", "outcome"]
)
BATCH_SECONDS = Histogram(
    "caption_batch_seconds",
    "Wall time of one POST /v1/captions.",
    ["engine"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
IN_FLIGHT = Gauge("caption_images_in_flight", "Images admitted and not yet answered.")
REJECTED = Counter("caption_requests_rejected_total", "Requests refused with 503 (overloaded).")
TOKENS = Counter("caption_tokens_total", "Tokens reported by the engine.", ["engine", "kind"])
DECODE_PIXELS = Gauge(
    "caption_decode_pixels_in_flight", "Pixels of the images being decoded at this moment."
)
DESCRIBING_PROCESS_DEATHS = Counter(
    "caption_describing_process_deaths_total",
    "Times a pool of the pixel engine's describing processes broke because one of them died "
    "(a decoder crash, the out-of-memory killer); its batches were read again part by part.",
)
CRASHING_IMAGES = Counter(
    "caption_crashing_images_total", "Images that ended the process describing them, twice."
)
