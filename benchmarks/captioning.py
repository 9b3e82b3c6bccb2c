"""Caption path benchmarks: image preparation per core, and the caption service over HTTP
against the fake vLLM engine's own rate (one and two replicas)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from analysis_service.clients.caption_client import CaptionClient, ImageRef
from caption_service.images import prepare_one
from caption_service.pixel_budget import PixelBudget
from caption_service.settings import CaptionSettings
from shared.caption_contract import CaptionImage
from shared.retry import RetryPolicy
from shared.settings import ServiceSettings
from tests.fakes.fake_vllm import FakeAsyncLLM, FakeSamplingParams

PHOTO_SIZES = [(500, 375), (1024, 768), (2048, 1536), (4000, 3000)]
# A realistic decode step for LLaVA-1.5-7B at full batch on one GPU, and a typical caption.
STEP_S, TOKENS, SEQS = 0.02, 90, 128


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Smooth colour gradients plus sensor-like noise: JPEG sizes close to real photos."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(x / width * rng.uniform(2, 6) + c) * np.cos(y / height * 3 + c)
            for c in range(3)
        ],
        axis=-1,
    )
    noisy = base + rng.normal(0, 12, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def ensure_photos(root: Path) -> dict[tuple[int, int], list[Path]]:
    rng = np.random.default_rng(0)
    out: dict[tuple[int, int], list[Path]] = {}
    for w, h in PHOTO_SIZES:
        folder = root / f"{w}x{h}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(6):
            path = folder / f"{i}.jpg"
            if not path.exists():
                photo(w, h, rng).save(path, quality=90)
            paths.append(path)
        out[(w, h)] = paths
    return out


def _pixel_budget() -> PixelBudget:
    """The caption service's decode budget at its configured size."""
    settings = CaptionSettings()
    return PixelBudget(settings.max_decode_pixels_in_flight, settings.caption_decode_wait_s)


def bench_preparation(photos: dict[tuple[int, int], list[Path]]) -> list[tuple[str, str]]:
    rows = []
    limits, roots = ServiceSettings().image_limits, [Path("/")]
    budget = _pixel_budget()
    for (w, h), paths in photos.items():
        items = [CaptionImage(id=str(i), path=str(p)) for i, p in enumerate(paths)]
        reps = max(2, int(60 / (w * h / 500_000 + 1)))
        start = time.perf_counter()
        for _ in range(reps):
            for item in items:
                assert not isinstance(prepare_one(item, limits, roots, budget, 1008, 336), str)
        rate = reps * len(items) / (time.perf_counter() - start)
        size_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        rows.append(
            (
                f"image preparation {w}x{h} JPEG (~{size_kb:.0f} KB)",
                f"{rate:,.1f} images/s per core",
            )
        )
    return rows


async def fake_engine_rate(images: list[Image.Image], n: int) -> float:
    """Captions/s of the fake engine driven directly, with everything in flight at once."""
    fake = FakeAsyncLLM(step_s=STEP_S, max_num_seqs=SEQS, caption_tokens=TOKENS)
    params = FakeSamplingParams({"max_tokens": TOKENS})

    async def one(i: int) -> None:
        prompt = {
            "prompt": "USER: <image>\nDescribe. ASSISTANT:",
            "multi_modal_data": {"image": images[i % len(images)]},
        }
        async for _ in fake.generate(prompt, params, f"r{i}"):
            pass

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def service_rate(urls: list[str], paths: list[Path], n: int) -> float:
    client = CaptionClient(
        urls, retry=RetryPolicy(attempts=3), timeout_s=600, send="path", overload_wait_s=600
    )
    batch = 32
    refs = [ImageRef(str(i), paths[i % len(paths)]) for i in range(n)]
    batches = [refs[i : i + batch] for i in range(0, n, batch)]
    # Enough batches in flight to keep every replica's engine full (its max_num_seqs).
    slots = asyncio.Semaphore(len(urls) * (SEQS // batch + 2))

    async def send(chunk: list[ImageRef]) -> None:
        async with slots:
            _, results = await client.caption(chunk)
            assert all(r.caption for r in results)

    async with client:
        await send(batches[0])  # warm up connections
        start = time.perf_counter()
        await asyncio.gather(*(send(b) for b in batches))
        return n / (time.perf_counter() - start)


def _start_replica(port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.fake_caption_server",
                str(port),
                str(STEP_S),
                str(TOKENS),
                str(SEQS),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, DATA_ROOTS="/"),
        )


def bench_service(state: Path, photos: dict, port_of) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    import httpx

    paths = photos[(500, 375)] + photos[(1024, 768)]
    limits, roots = ServiceSettings().image_limits, [Path("/")]
    budget = _pixel_budget()
    prepared = [
        prepare_one(CaptionImage(id="x", path=str(p)), limits, roots, budget, 1008, 336)
        for p in paths
    ]
    n = 1200
    own = asyncio.run(fake_engine_rate([p.image for p in prepared if not isinstance(p, str)], n))
    ports = [port_of(), port_of()]
    procs = [_start_replica(p, state / f"fake-caption-{p}.log") for p in ports]
    try:
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("fake caption service did not start")
                time.sleep(0.2)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        one = asyncio.run(service_rate(urls[:1], paths, n))
        two = asyncio.run(service_rate(urls, paths, 2 * n))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    label = f"fake vLLM: {STEP_S * 1000:.0f} ms/step, {TOKENS} tokens/caption, {SEQS} seqs"
    return [
        (f"fake engine alone ({label})", f"{own:,.1f} captions/s"),
        ("caption service over HTTP, 1 replica", f"{one:,.1f} captions/s (ratio {one / own:.2f})"),
        (
            "caption service over HTTP, 2 replicas",
            f"{two:,.1f} captions/s (ratio {two / (2 * own):.2f} of 2x engine, "
            f"{two / one:.2f}x 1 replica)",
        ),
    ]


def run(state: Path, port_of) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    random.seed(0)
    photos = ensure_photos(state / "photos")
    return bench_preparation(photos) + bench_service(state, photos, port_of)
