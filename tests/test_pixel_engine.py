"""The pixel describer writes what the pixels show."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import multiprocessing
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import numpy as np
import psutil
import pytest
from PIL import Image, ImageDraw
from prometheus_client import REGISTRY

from caption_service import images as image_preparation
from caption_service.engines import pixel
from caption_service.engines import pixel_stats as ps
from caption_service.engines.base import FileCaption
from caption_service.engines.pixel import PixelEngine, describe
from caption_service.images import PreparedImage, prepare_one
from caption_service.pixel_budget import PixelBudget
from shared.caption_contract import CaptionImage
from shared.imaging import ImageLimits
from tests.builders import write_image
from tests.fakes.crashing_describer import describe_or_crash


def _split(top: tuple[int, int, int], bottom: tuple[int, int, int], size=(120, 90)) -> Image.Image:
    image = Image.new("RGB", size, top)
    image.paste(bottom, (0, size[1] // 2, size[0], size[1]))
    return image


def test_sky_over_grass_names_both_parts():
    text = describe(_split((70, 130, 230), (40, 160, 50)))
    assert "blue upper part" in text
    assert "green lower part" in text
    assert "landscape" in text


def test_dark_gray_image():
    text = describe(Image.new("RGB", (50, 80), (30, 30, 30)))
    assert "dark" in text
    assert "grayscale" in text
    assert "portrait" in text


def test_bright_snow_scene():
    text = describe(_split((235, 235, 240), (250, 250, 250), size=(60, 60)))
    assert "very bright" in text
    assert "white" in text
    assert "square" in text


def test_a_caption_stays_word_for_word_what_its_key_promises():
    # Captions are stored and reused under the engine's prompt version (pixel-v1): measuring
    # anywhere (another process, from a copy's bytes) must not change one word of them.
    image = Image.new("RGB", (160, 120), (70, 130, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 70, 160, 120], fill=(40, 160, 50))
    draw.ellipse([50, 20, 90, 45], fill=(240, 240, 240))
    draw.line([0, 0, 160, 120], fill=(120, 60, 20), width=3)
    assert describe(image) == (
        "An evenly lit, vivid landscape image, mostly blue and green, with a blue upper part "
        "and a green lower part; low contrast, smooth."
    )
    assert describe(image.resize((37, 211))).startswith("An evenly lit, vivid portrait image")


def _names_by_the_rules(hsv: np.ndarray) -> np.ndarray:
    """The naming rules as written first, on each pixel's HSV as numbers from 0 to 1."""
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    names = np.full(h.shape, ps._CODE["red"], dtype=np.uint8)
    lower = 0.0
    for upper, name in ps._HUES:
        names[(h >= lower) & (h < upper)] = ps._CODE[name]
        lower = upper
    names[(h >= 10) & (h < 45) & (v < 0.6) & (s > 0.25)] = ps._CODE["brown"]
    names[s < 0.18] = ps._CODE["gray"]
    names[(s < 0.18) & (v > 0.82)] = ps._CODE["white"]
    names[v < 0.18] = ps._CODE["black"]
    return names


def test_pixels_are_named_by_the_rules_for_every_hsv_value():
    hue, saturation = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    for value in range(256):
        hsv = np.stack([hue, saturation, np.full_like(hue, value)], axis=-1).astype(np.uint8)
        expected = _names_by_the_rules(hsv.astype(np.float32) / 255.0)
        assert np.array_equal(ps._color_names(hsv), expected), value


LIMITS = ImageLimits(max_bytes=10**6, max_pixels=10**6)


@pytest.fixture
async def engine() -> AsyncIterator[PixelEngine]:
    engine = PixelEngine(processes=2, decode_pixels=10**8, decode_wait_s=30.0)
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def crashing_engine() -> AsyncIterator[PixelEngine]:
    """Its describing processes end outright on an image whose id starts with 'crash'."""
    engine = PixelEngine(
        processes=2, decode_pixels=10**8, decode_wait_s=30.0, describe_run=describe_or_crash
    )
    try:
        yield engine
    finally:
        await engine.close()


def _varied(count: int) -> list[Image.Image]:
    sizes = [(120, 90), (50, 80), (256, 40), (7, 3)]
    return [
        _split((i * 37 % 256, i * 91 % 256, 200), (40, i * 53 % 256, 50), size=sizes[i % 4])
        for i in range(count)
    ]


def _sent(images: list[Image.Image]) -> list[CaptionImage]:
    """The images as request items of their bytes (PNG: decoded, they are the same pixels)."""
    items = []
    for i, image in enumerate(images):
        png = io.BytesIO()
        image.save(png, format="PNG")
        items.append(CaptionImage(id=str(i), data=base64.b64encode(png.getvalue()).decode()))
    return items


async def _captions(engine: PixelEngine, images: list[Image.Image]) -> list[str | None]:
    return [c.caption for c in await engine.caption_files(_sent(images), LIMITS, [])]


def _describing_processes() -> list[psutil.Process]:
    """The live processes forked for describing, by the fork server this process started."""
    children = psutil.Process().children()
    servers = [p for p in children if "multiprocessing.forkserver" in " ".join(p.cmdline())]
    live = []
    for worker in (worker for server in servers for worker in server.children()):
        with contextlib.suppress(psutil.NoSuchProcess):  # an earlier engine's, ending
            if worker.status() != psutil.STATUS_ZOMBIE:
                live.append(worker)
    return live


async def test_the_engine_writes_what_describe_writes_in_processes_of_its_own(engine):
    images = _varied(200)
    assert await _captions(engine, images) == [describe(image) for image in images]
    # Measuring ran outside the service's process, whose GIL it would otherwise hold.
    used = [sum(p.cpu_times()[:2]) for p in _describing_processes()]
    assert used and sum(used) > 0


async def test_files_are_read_decoded_and_described_in_the_describing_processes(
    engine, tmp_path, monkeypatch
):
    limits = LIMITS
    items = [
        CaptionImage(id=str(i), path=str(write_image(tmp_path / f"{i}.jpg", marker=i)))
        for i in range(20)
    ]
    items.insert(7, CaptionImage(id="gone", path=str(tmp_path / "gone.jpg")))
    expected = []
    for item in items:
        prepared = prepare_one(item, limits, [tmp_path], PixelBudget(10**6, 1.0), 256)
        if isinstance(prepared, PreparedImage):
            expected.append(FileCaption(describe(prepared.image), sha256=prepared.sha256))
        else:
            expected.append(FileCaption(None, error=prepared))

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was prepared in the service's process")

    # The describing processes are forked from a server that imported the modules itself.
    monkeypatch.setattr(image_preparation, "prepare_one", not_here)
    monkeypatch.setattr(pixel, "prepare_one", not_here)
    assert await engine.caption_files(items, limits, [tmp_path]) == expected
    assert expected[7].error and expected[7].sha256 is None and expected[8].caption


async def test_a_dead_describing_process_costs_no_image(engine):
    images = _varied(6)
    await _captions(engine, images)
    # As if a process had died decoding: its pixels are never given back to its pool's budget.
    first_budget = engine.decode_budget
    held = first_budget.hold(10**8)
    held.__enter__()
    for worker in _describing_processes():
        with contextlib.suppress(psutil.NoSuchProcess):  # an earlier engine's, gone since
            worker.kill()
            worker.wait(10)
    # The broken pool fails the next batch's runs: the batch is described again, an image at
    # a time in a process of its own, and a new pool with a budget of its own, whole,
    # serves the next one.
    assert await _captions(engine, images) == [describe(image) for image in images]
    assert await _captions(engine, images) == [describe(image) for image in images]
    assert engine.decode_budget is not first_budget and engine.decode_budget.in_use == 0
    assert engine.decode_budget.peak > 0
    held.__exit__(None, None, None)


def _counted(name: str) -> float:
    return REGISTRY.get_sample_value(f"caption_{name}_total") or 0.0


async def test_an_image_that_crashes_its_process_is_an_error_of_its_own(crashing_engine):
    engine = crashing_engine
    deaths, crashing = _counted("describing_process_deaths"), _counted("crashing_images")
    images = _varied(12)
    items = _sent(images)
    items[5] = items[5].model_copy(update={"id": "crash-5"})
    # Every run of the batch fails with the pool; then each image is read alone.
    described = await engine.caption_files(items, LIMITS, [])
    assert described[5] == FileCaption(None, error=pixel.CRASHED)
    # Counted for operators: the pool's break, and the image that crashed twice alone.
    assert _counted("describing_process_deaths") == deaths + 1
    assert _counted("crashing_images") == crashing + 1
    expected = [describe(image) for image in images]
    assert [d.caption for i, d in enumerate(described) if i != 5] == expected[:5] + expected[6:]
    # The engine goes on with a new pool.
    assert await _captions(engine, images[:3]) == expected[:3]


async def test_batches_read_again_after_a_crash_are_a_few_at_a_time(crashing_engine, monkeypatch):
    """Each is read in a process of its own: as many at once as the engine's processes, not
    one per request in flight."""
    engine = crashing_engine
    real, running, most = pixel.isolating, 0, 0

    async def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(pixel, "isolating", counted)
    images = _varied(4)
    batches = []
    for b in range(6):
        items = _sent(images)
        items[1] = items[1].model_copy(update={"id": f"crash-{b}"})
        batches.append(items)
    # Every batch's run fails with the pool, all at once.
    results = await asyncio.gather(*(engine.caption_files(b, LIMITS, []) for b in batches))
    assert all(r[1] == FileCaption(None, error=pixel.CRASHED) for r in results)
    expected = [describe(image) for image in images]
    assert all([r[i].caption for i in (0, 2, 3)] == expected[:1] + expected[2:] for r in results)
    assert 1 <= most <= 2


async def test_a_given_up_batch_stops_at_its_next_image(engine, monkeypatch):
    # A describing process checks, before each image, whether its batch was given up.
    shared = pixel._PoolShared.make(multiprocessing.get_context("spawn"), 10**8, 1.0)
    monkeypatch.setattr(pixel, "_SHARED", shared)
    items = _sent(_varied(5))
    assert len(pixel._describe_files(items, LIMITS, [], batch=7)) == 5
    shared.give_up(7)
    assert pixel._describe_files(items, LIMITS, [], batch=7) == []
    assert len(pixel._describe_files(items, LIMITS, [], batch=8)) == 5
    # The engine gives up a batch whose request is cancelled: its runs, already taken by the
    # processes, would otherwise go on to the end.
    assert engine.decode_budget is None
    await _captions(engine, _varied(2))  # batch 1; starts the pool
    budget = engine.decode_budget
    assert budget is not None
    with budget.hold(10**8):  # batch 2's decodes wait for every pixel
        request = asyncio.create_task(engine.caption_files(_sent(_varied(40)), LIMITS, []))
        await asyncio.sleep(0.2)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    assert engine._pool.shared.gave_up(2) and not engine._pool.shared.gave_up(1)
    assert await _captions(engine, _varied(3)) == [describe(i) for i in _varied(3)]


_KILLED_SERVICE = """
import asyncio, base64, io, os, signal
import psutil
from PIL import Image
from caption_service.engines.pixel import PixelEngine
from shared.caption_contract import CaptionImage
from shared.imaging import ImageLimits

async def main():
    engine = PixelEngine(processes=2, decode_pixels=10**8, decode_wait_s=30)
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 99, 199)).save(png, format="PNG")
    item = CaptionImage(id="1", data=base64.b64encode(png.getvalue()).decode())
    await engine.caption_files([item] * 8, ImageLimits(max_bytes=10**6, max_pixels=10**6), [])
    print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_describing_processes_end_with_a_service_killed_outright():
    service = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SERVICE], stdout=subprocess.PIPE, text=True
    )
    assert service.stdout is not None
    pids = service.stdout.readline().split()
    assert service.wait(60) == -signal.SIGKILL
    started = []
    for pid in map(int, pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            started.append(psutil.Process(pid))
    assert started
    # The fork server, its describing processes and the resource tracker: none stays behind.
    try:
        deadline = time.monotonic() + 20
        while left := [p for p in started if _alive(p)]:
            assert time.monotonic() < deadline, [" ".join(p.cmdline())[:80] for p in left]
            time.sleep(0.1)
    finally:
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        service.stdout.close()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("size", [(1, 40), (40, 1), (1, 1)])
def test_an_image_one_pixel_across_has_a_texture_word_not_nan(size):
    stats = ps.measure(Image.new("RGB", size, (120, 60, 30)))
    assert stats.detail == 0.0
    assert "smooth" in describe(Image.new("RGB", size, (120, 60, 30)))
