"""The caption service's decode budget: the pixels decoded at once across all decoders (threads,
or the pixel engine's processes) stay within MAX_DECODE_PIXELS_IN_FLIGHT; an image larger than
it is its own error, and a budget that stays used up answers 503 with Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from caption_service import router
from caption_service.app import create_app
from caption_service.pixel_budget import DecoderBusy, PixelBudget
from caption_service.settings import CaptionSettings
from shared.imaging import InvalidImage
from tests.builders import write_image


def _until(condition, limit_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.005)


def test_a_decode_that_does_not_fit_waits_for_the_others():
    budget = PixelBudget(capacity=100, wait_s=30)
    release = threading.Event()
    entered: list[int] = []

    def decode() -> None:
        with budget.hold(40):
            entered.append(budget.in_use)
            release.wait(10)

    threads = [threading.Thread(target=decode) for _ in range(3)]
    for thread in threads:
        thread.start()
    _until(lambda: len(entered) == 2)
    assert budget.in_use == 80  # the third (40 more) would pass 100: it waits
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(entered) == 3 and budget.peak == 80 and budget.in_use == 0


def test_many_concurrent_decodes_never_pass_the_budget():
    budget = PixelBudget(capacity=100, wait_s=30)
    seen: list[int] = []
    lock = threading.Lock()

    def decodes(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            with budget.hold(rng.randint(1, 60)):
                with lock:
                    seen.append(budget.in_use)
                time.sleep(rng.random() / 1000)

    threads = [threading.Thread(target=decodes, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 12 * 40
    assert max(seen) <= 100 and budget.peak <= 100 and budget.in_use == 0


def test_an_image_larger_than_the_whole_budget_is_refused_at_once():
    budget = PixelBudget(capacity=100, wait_s=30)
    with pytest.raises(InvalidImage, match="MAX_DECODE_PIXELS_IN_FLIGHT"):
        with budget.hold(101):
            pass
    assert budget.in_use == 0


def test_a_budget_that_stays_used_up_is_busy_after_the_wait():
    budget = PixelBudget(capacity=100, wait_s=0.05)
    with budget.hold(90):
        with pytest.raises(DecoderBusy, match="waited"):
            with budget.hold(20):
                pass
    with budget.hold(100):  # everything given back
        assert budget.in_use == 100


@contextlib.asynccontextmanager
async def _small_budget(data_root: Path, wait_s: float) -> AsyncIterator[Any]:
    """Images of 80x60 = 4,800 pixels; at most two decoded at once; a decode waits up to
    wait_s for its pixels."""
    settings = CaptionSettings(
        data_roots=str(data_root),
        caption_workers=4,
        max_decode_pixels_in_flight=10_000,
        caption_decode_wait_s=wait_s,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def small_budget_app(data_root: Path) -> AsyncIterator[Any]:
    """Four processes share the two images' budget: a decode waits as long as it takes a
    busy machine to give the others their turn."""
    async with _small_budget(data_root, wait_s=30) as app:
        yield app


@pytest.fixture
async def impatient_small_budget_app(data_root: Path) -> AsyncIterator[Any]:
    """A decode gives up after 0.2 s: for a budget held on purpose."""
    async with _small_budget(data_root, wait_s=0.2) as app:
        yield app


async def _post(app: Any, images: list[dict]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://caption.localhost"
    ) as client:
        return await client.post("/v1/captions", json={"images": images})


async def test_the_service_decodes_within_the_budget_and_refuses_what_cannot_fit(
    small_budget_app, data_root: Path
):
    images = [
        {"id": str(i), "path": str(write_image(data_root / f"{i}.jpg", size=(80, 60), marker=i))}
        for i in range(12)
    ]
    canvas = write_image(data_root / "canvas.png", size=(200, 100))  # 20,000 > 10,000
    resp = await _post(small_budget_app, [*images, {"id": "canvas", "path": str(canvas)}])
    assert resp.status_code == 200, resp.text
    results = {r["id"]: r for r in resp.json()["results"]}
    assert all(results[str(i)]["caption"] for i in range(12))
    assert "MAX_DECODE_PIXELS_IN_FLIGHT" in results["canvas"]["error"]
    # The pixel engine decodes in its four processes, which share one budget.
    budget = small_budget_app.state.captioner.decode_budget()
    assert budget is small_budget_app.state.captioner.engine.decode_budget
    assert 4_800 <= budget.peak <= 10_000 and budget.in_use == 0


async def test_a_used_up_budget_answers_503_with_retry_after(
    impatient_small_budget_app, data_root: Path
):
    path = write_image(data_root / "a.jpg", size=(80, 60))
    assert (
        await _post(impatient_small_budget_app, [{"id": "a", "path": str(path)}])
    ).status_code == 200
    # The describing processes' budget, taken here, in the process that started them.
    budget = impatient_small_budget_app.state.captioner.decode_budget()
    with budget.hold(10_000):  # every pixel taken for longer than a decode waits
        resp = await _post(impatient_small_budget_app, [{"id": "a", "path": str(path)}])
    assert resp.status_code == 503
    assert resp.json()["error"] == "overloaded" and int(resp.headers["Retry-After"]) >= 1
    assert (
        await _post(impatient_small_budget_app, [{"id": "a", "path": str(path)}])
    ).status_code == 200


async def test_paths_are_resolved_off_the_event_loop(
    small_budget_app, data_root: Path, monkeypatch: pytest.MonkeyPatch
):
    on_loop: list[bool] = []
    real = router.check_paths

    def check_paths(*args: Any) -> None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        real(*args)

    monkeypatch.setattr(router, "check_paths", check_paths)
    path = write_image(data_root / "a.jpg")
    assert (await _post(small_budget_app, [{"id": "a", "path": str(path)}])).status_code == 200
    assert on_loop == [False]
