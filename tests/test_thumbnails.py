"""Thumbnails of the images of a real finished job: made from the file the scan saw, oriented,
cached on disk, and refused (never a wrong image) when the file is gone, changed, moved out
of the data roots, undecodable, or was never there."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select

from analysis_service.app import create_app
from analysis_service.models import Image as ImageRow
from analysis_service.models import JobImage
from analysis_service.settings import AnalysisSettings
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, api_client, run, submit

KEY = "thumbnail-key-0123456789abcdef"
BIG = "cat/big.jpg"  # 1200 x 900
TURNED = "dog/turned.jpg"  # stored 120 x 80, EXIF orientation 6: shown 80 x 120
CORRUPT = "dog/corrupt.jpg"
SMALL = "cat/00.jpg"  # 80 x 60


@pytest.fixture
def settings(analysis_settings: AnalysisSettings, tmp_path: Path) -> AnalysisSettings:
    return analysis_settings.model_copy(update={"state_dir": tmp_path / "state"})


@pytest.fixture
async def thumbs(settings: AnalysisSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(settings)) as client:
        yield client


def _write_turned(path: Path) -> None:
    """Landscape pixels that EXIF says to turn a quarter clockwise (Orientation 6)."""
    image = Image.new("RGB", (120, 80), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 60, 80))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, format="JPEG", exif=exif)


def _dataset(data_root: Path) -> Path:
    root = make_dataset(data_root / "pets", per_class=2)
    write_image(root / BIG, color=(10, 120, 60), size=(1200, 900))
    _write_turned(root / TURNED)
    (root / CORRUPT).write_bytes(b"not an image at all")
    return root


async def _image_ids(sessionmaker, job_id: str) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(ImageRow.relpath, ImageRow.id)
            .join(JobImage, JobImage.image_id == ImageRow.id)
            .where(JobImage.job_id == job_id)
        )
        return {relpath: image_id for relpath, image_id in rows}


@pytest.fixture
async def job(
    api, settings, sessionmaker, caption_app, data_root: Path
) -> tuple[Path, dict[str, int]]:
    """A finished job over a small dataset: (its folder, relpath -> image id)."""
    root = _dataset(data_root)
    job_id = await submit(api, "pets")
    assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) == "succeeded"
    return root, await _image_ids(sessionmaker, job_id)


def _url(image_id: int, size: int | None = None) -> str:
    return f"/v1/images/{image_id}/thumbnail" + (f"?size={size}" if size else "")


def _picture(resp: httpx.Response) -> Image.Image:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(resp.content))
    assert image.format == "JPEG"
    return image


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == code, resp.text
    return resp.json()["detail"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_thumbnail_is_a_jpeg_fitting_the_size_and_never_enlarged(thumbs, job):
    _, ids = job
    assert _picture(await thumbs.get(_url(ids[BIG]))).size == (256, 192)  # default size
    assert _picture(await thumbs.get(_url(ids[BIG], 64))).size == (64, 48)
    assert _picture(await thumbs.get(_url(ids[BIG], 512))).size == (512, 384)
    assert _picture(await thumbs.get(_url(ids[SMALL], 512))).size == (80, 60)


async def test_exif_orientation_is_applied(thumbs, job):
    _, ids = job
    image = _picture(await thumbs.get(_url(ids[TURNED], 64)))
    assert image.size == (43, 64)  # portrait, as a viewer shows it
    # The blue left half of the stored pixels is on top once turned clockwise.
    red, _, blue = image.convert("RGB").getpixel((21, 5))
    assert blue > 150 and red < 100


async def test_the_etag_names_the_content_and_size_and_if_none_match_gets_304(thumbs, job):
    root, ids = job
    first = await thumbs.get(_url(ids[SMALL], 128))
    etag = first.headers["etag"]
    assert etag == f'"{_sha256(root / SMALL)}-128"'
    assert first.headers["cache-control"] == "private, max-age=31536000, immutable"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await thumbs.get(_url(ids[SMALL], 128), headers={"If-None-Match": sent})
        assert again.status_code == 304 and again.content == b"", sent
        assert again.headers["etag"] == etag
    other_size = await thumbs.get(_url(ids[SMALL], 64), headers={"If-None-Match": etag})
    assert other_size.status_code == 200 and other_size.headers["etag"] != etag


async def test_a_cached_thumbnail_is_served_without_reading_the_file_again(
    thumbs, job, settings: AnalysisSettings
):
    root, ids = job
    path = root / SMALL
    first = await thumbs.get(_url(ids[SMALL]))
    cached = list((settings.state_dir / "thumbnails").rglob(f"{_sha256(path)}-256.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.content
    # Other bytes, same size and modification time: only a read of the file can tell.
    st = path.stat()
    path.write_bytes(bytes(255 - b for b in path.read_bytes()))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (await thumbs.get(_url(ids[SMALL]))).content == first.content  # from the cache
    cached[0].unlink()  # a cold read hashes the file and finds it changed
    detail = _error(await thumbs.get(_url(ids[SMALL])), 410, "file_changed")
    assert "content differs" in detail


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cached"])
async def test_a_file_changed_since_the_scan_is_410(thumbs, job, warm: bool):
    root, ids = job
    if warm:
        assert (await thumbs.get(_url(ids[SMALL]))).status_code == 200
    write_image(root / SMALL, color=(1, 2, 3), size=(90, 70))
    detail = _error(await thumbs.get(_url(ids[SMALL])), 410, "file_changed")
    assert "changed since it was scanned" in detail and SMALL in detail


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cached"])
async def test_a_deleted_file_is_404_saying_so(thumbs, job, warm: bool):
    root, ids = job
    if warm:
        assert (await thumbs.get(_url(ids[SMALL]))).status_code == 200
    (root / SMALL).unlink()
    assert "is gone" in _error(await thumbs.get(_url(ids[SMALL])), 404, "file_gone")


async def test_a_file_swapped_for_a_symlink_out_of_the_roots_is_403(thumbs, job, tmp_path: Path):
    root, ids = job
    assert (await thumbs.get(_url(ids[SMALL]))).status_code == 200  # cached, still refused
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy2(root / SMALL, outside / "same.jpg")  # the very bytes and times
    (root / SMALL).unlink()
    (root / SMALL).symlink_to(outside / "same.jpg")
    detail = _error(await thumbs.get(_url(ids[SMALL])), 403, "forbidden")
    assert "outside the data roots" in detail


async def test_data_roots_changed_since_the_scan_is_403(job, settings, tmp_path: Path):
    _, ids = job
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = settings.model_copy(update={"data_roots": str(elsewhere)})
    async with api_client(create_app(moved)) as client:
        _error(await client.get(_url(ids[SMALL])), 403, "forbidden")


async def test_an_image_the_scan_found_invalid_is_422_with_its_reason(thumbs, job):
    _, ids = job
    detail = _error(await thumbs.get(_url(ids[CORRUPT])), 422, "invalid_image")
    assert "not a recognised image format" in detail


async def test_an_image_that_no_longer_passes_the_limits_is_422(job, settings):
    _, ids = job
    strict = settings.model_copy(update={"max_image_pixels": 100_000})
    async with api_client(create_app(strict)) as client:
        detail = _error(await client.get(_url(ids[BIG])), 422, "invalid_image")
        assert "too many pixels" in detail
        assert (await client.get(_url(ids[SMALL]))).status_code == 200


async def test_a_size_not_offered_or_an_unknown_image_is_refused(thumbs, job):
    _, ids = job
    for size in ("100", "abc", "-64", "1024"):
        resp = await thumbs.get(f"/v1/images/{ids[SMALL]}/thumbnail?size={size}")
        assert _error(resp, 422, "validation_error")
    assert "not found" in _error(await thumbs.get(_url(10**12)), 404, "not_found")
    _error(await thumbs.get(_url(0)), 422, "validation_error")


async def test_concurrent_requests_for_one_cold_thumbnail_get_the_same_bytes(thumbs, job):
    _, ids = job
    answers = await asyncio.gather(*(thumbs.get(_url(ids[BIG])) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1


async def test_an_image_from_a_captions_file_has_no_file_404(
    api, thumbs, settings, sessionmaker, data_root: Path
):
    with (data_root / "caps.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("animals", "img_name", "caption"))
        for i in range(8):
            label = ("cat", "dog")[i % 2]
            writer.writerow((label, f"{label}{i}.jpg", f"a photo of a {label}, number {i}"))
    resp = await api.post("/v1/jobs", json={"captions_path": "caps.csv"})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    assert await run(job_id, settings, sessionmaker, None) == "succeeded"
    image_id = (await _image_ids(sessionmaker, job_id))["cat0.jpg"]
    detail = _error(await thumbs.get(_url(image_id)), 404, "no_image_file")
    assert "imported from a captions file" in detail


async def test_with_keys_configured_a_thumbnail_needs_one(job, settings):
    _, ids = job
    keyed = settings.model_copy(update={"analysis_api_keys": SecretStr(f"viewer:{KEY}")})
    async with api_client(create_app(keyed)) as client:
        _error(await client.get(_url(ids[SMALL])), 401, "unauthorized")
        signed = await client.get(_url(ids[SMALL]), headers={"Authorization": f"Bearer {KEY}"})
        assert _picture(signed).size == (80, 60)
