"""The caption service over HTTP with the pixel engine."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from caption_service import images
from caption_service.images import PreparedImage, prepare_all
from caption_service.pixel_budget import DecoderBusy, PixelBudget
from shared.caption_contract import CaptionImage
from shared.settings import ServiceSettings
from tests.builders import image_bytes, write_image


async def test_captions_by_path_and_by_data_in_order(caption_client, data_root: Path):
    path = write_image(data_root / "a.jpg", color=(40, 160, 50))
    data = base64.b64encode(image_bytes(color=(30, 60, 200))).decode()
    resp = await caption_client.post(
        "/v1/captions",
        json={"images": [{"id": "p", "path": str(path)}, {"id": "d", "data": data}]},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert [r["id"] for r in body["results"]] == ["p", "d"]
    assert "green" in body["results"][0]["caption"]
    assert "blue" in body["results"][1]["caption"]
    assert body["engine"]["engine"] == "pixel"
    # Each caption says which bytes it is the caption of.
    assert body["results"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body["results"][1]["sha256"] == hashlib.sha256(base64.b64decode(data)).hexdigest()


async def test_bad_images_get_per_image_errors_and_the_rest_is_captioned(
    caption_client, data_root: Path
):
    good = write_image(data_root / "good.jpg")
    (data_root / "empty.jpg").write_bytes(b"")
    (data_root / "text.jpg").write_bytes(b"hello")
    images = [
        {"id": "good", "path": str(good)},
        {"id": "empty", "path": str(data_root / "empty.jpg")},
        {"id": "text", "path": str(data_root / "text.jpg")},
        {"id": "missing", "path": str(data_root / "missing.jpg")},
        {"id": "b64", "data": "not base64!!"},
    ]
    results = (await caption_client.post("/v1/captions", json={"images": images})).json()["results"]
    by_id = {r["id"]: r for r in results}
    assert by_id["good"]["caption"] and by_id["good"]["error"] is None
    assert "empty file" in by_id["empty"]["error"]
    assert "not a recognised image format" in by_id["text"]["error"]
    assert by_id["missing"]["error"] == "cannot read the file: no such file or directory"
    assert "base64" in by_id["b64"]["error"]


async def test_empty_batch_is_422(caption_client):
    resp = await caption_client.post("/v1/captions", json={"images": []})
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "body.images"


async def test_batch_over_limit_is_422_naming_the_limit_the_schema_publishes(caption_client):
    images = [{"id": str(i), "data": "AA=="} for i in range(17)]
    resp = await caption_client.post("/v1/captions", json={"images": images})
    assert resp.status_code == 422
    assert "limit of 16" in resp.json()["detail"]
    schema = (await caption_client.get("/openapi.json")).json()
    assert (
        schema["components"]["schemas"]["CaptionRequest"]["properties"]["images"]["maxItems"] == 16
    )


async def test_path_outside_roots_is_403(caption_client, tmp_path: Path):
    outside = write_image(tmp_path / "elsewhere.jpg")
    resp = await caption_client.post(
        "/v1/captions", json={"images": [{"id": "x", "path": str(outside)}]}
    )
    assert resp.status_code == 403
    assert resp.json()["error"] == "forbidden"


async def test_item_with_both_path_and_data_is_422(caption_client):
    resp = await caption_client.post(
        "/v1/captions", json={"images": [{"id": "x", "path": "/a", "data": "AA=="}]}
    )
    assert resp.status_code == 422
    assert "exactly one" in resp.json()["detail"]


async def test_metrics_count_captioned_images(caption_client, data_root: Path):
    def count(text: str) -> float:
        for line in text.splitlines():
            if line.startswith('caption_images_total{engine="pixel",outcome="ok"}'):
                return float(line.split()[-1])
        return 0.0

    before = count((await caption_client.get("/metrics")).text)
    path = write_image(data_root / "m.jpg")
    await caption_client.post("/v1/captions", json={"images": [{"id": "m", "path": str(path)}]})
    assert count((await caption_client.get("/metrics")).text) == before + 1


async def test_health_ready_and_info(caption_client):
    assert (await caption_client.get("/healthz")).json() == {"status": "ok"}
    assert (await caption_client.get("/readyz")).status_code == 200
    info = (await caption_client.get("/v1/info")).json()
    assert info["engine"] == "pixel" and info["prompt_version"]


async def test_hostile_paths_are_errors_of_their_own_images(
    caption_client, data_root: Path, tmp_path: Path
):
    """One bad path never costs the batch: outside the roots, a FIFO, a symlink loop, a name
    too long, a path through a file, a folder. Each answers at once with its reason."""
    good = write_image(data_root / "good.jpg")
    outside = write_image(tmp_path / "elsewhere.jpg")
    os.mkfifo(data_root / "pipe.jpg")
    (data_root / "loop.jpg").symlink_to(data_root / "loop.jpg")
    images = [
        {"id": "good", "path": str(good)},
        {"id": "outside", "path": str(outside)},
        {"id": "fifo", "path": str(data_root / "pipe.jpg")},
        {"id": "loop", "path": str(data_root / "loop.jpg")},
        {"id": "long", "path": str(data_root / ("x" * 300 + ".jpg"))},
        {"id": "through", "path": str(good / "inside.jpg")},
        {"id": "folder", "path": str(data_root)},
    ]
    resp = await caption_client.post("/v1/captions", json={"images": images})
    assert resp.status_code == 200, resp.text
    by_id = {r["id"]: r for r in resp.json()["results"]}
    assert by_id["good"]["caption"] and by_id["good"]["error"] is None
    assert "outside the allowed data roots" in by_id["outside"]["error"]
    assert "not a regular file" in by_id["fifo"]["error"]
    assert "symbolic links" in by_id["loop"]["error"]
    assert "file name too long" in by_id["long"]["error"]
    assert "not a directory" in by_id["through"]["error"]
    assert "a folder" in by_id["folder"]["error"]


async def test_bad_paths_class_names_and_unknown_fields_are_422_naming_the_field(
    caption_client,
):
    for image, field in [
        ({"id": "a", "path": "/" + "p" * 4096}, "body.images.0.path"),
        ({"id": "a", "path": "images/a.jpg"}, "body.images.0.path"),  # relative
        ({"id": "a", "data": "AA==", "clas_name": "c"}, "body.images.0.clas_name"),
        ({"id": "a", "data": "AA==", "class_name": "c" * 256}, "body.images.0.class_name"),
        ({"id": "i" * 201, "data": "AA=="}, "body.images.0.id"),
    ]:
        resp = await caption_client.post("/v1/captions", json={"images": [image]})
        assert resp.status_code == 422, resp.text
        assert [f["field"] for f in resp.json()["fields"]] == [field]
    misspelt = {"images": [{"id": "a", "data": "AA=="}], "clas_hint": True}
    resp = await caption_client.post("/v1/captions", json=misspelt)
    assert resp.status_code == 422 and resp.json()["fields"][0]["field"] == "body.clas_hint"


async def test_every_error_the_schema_declares_has_the_error_body(caption_client):
    """FastAPI's own 422 shape (detail as a list) is not what the service answers."""
    schema = (await caption_client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(schema)
    resp = await caption_client.get("/v1/info", params={"class_hint": "maybe"})
    assert resp.status_code == 422
    declared = schema["paths"]["/v1/info"]["get"]["responses"]["422"]
    assert declared["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert set(resp.json()) == {"error", "detail", "fields"}


def test_base64_data_over_the_image_limit_is_refused_before_decoding(monkeypatch, tmp_path):
    from caption_service import images as module
    from shared.caption_contract import CaptionImage
    from shared.imaging import ImageLimits, InvalidImage

    decoded: list[int] = []
    real = module.base64.b64decode
    monkeypatch.setattr(
        module.base64, "b64decode", lambda d, **kw: decoded.append(1) or real(d, **kw)
    )
    limits = ImageLimits(max_bytes=1000, max_pixels=10**6)
    big = CaptionImage(id="big", data=base64.b64encode(b"x" * 2000).decode())
    with pytest.raises(InvalidImage, match=r"too large.*limit 1000"):
        module._read_bytes(big, limits, [tmp_path])
    assert decoded == []
    small = CaptionImage(id="small", data=base64.b64encode(b"x" * 1000).decode())
    assert module._read_bytes(small, limits, [tmp_path]) == b"x" * 1000


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the work handed to it."""

    handed = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.handed += 1
        return super().submit(fn, *args, **kwargs)


def _decode_budget() -> PixelBudget:
    return PixelBudget(capacity=10**9, wait_s=5)


async def test_a_batch_is_decoded_in_one_hand_off_per_pool_thread(data_root: Path):
    paths = [write_image(data_root / f"{i}.jpg", marker=i) for i in range(10)]
    (data_root / "bad.jpg").write_bytes(b"not an image")
    items = [CaptionImage(id=str(i), path=str(p)) for i, p in enumerate(paths)]
    items.insert(4, CaptionImage(id="bad", path=str(data_root / "bad.jpg")))
    limits = ServiceSettings().image_limits
    with CountingPool(max_workers=2) as pool:
        prepared = await prepare_all(items, limits, [data_root], _decode_budget(), pool, 2, 256)
    # Each hand-off to a thread wakes the event loop on its return: two, not eleven.
    assert pool.handed == 2
    assert isinstance(prepared[4], str) and "not a recognised image format" in prepared[4]
    good = [p for i, p in enumerate(prepared) if i != 4]
    assert [p.sha256 for p in good if isinstance(p, PreparedImage)] == [
        hashlib.sha256(path.read_bytes()).hexdigest() for path in paths
    ]


async def test_a_failed_batch_stops_decoding_the_images_it_has_not_reached(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
):
    decoded: list[str] = []

    def prepare_one(item: CaptionImage, *args: object) -> str:
        # Image 0 fails at once; the others are slow enough (2 s for a run of 20) that a
        # busy machine's late wake-up of the loop cannot let the other run finish.
        time.sleep(0.01 if item.id == "0" else 0.1)
        if item.id == "0":
            raise DecoderBusy("every pixel of the budget is taken")
        decoded.append(item.id)
        return "unreadable"

    monkeypatch.setattr(images, "prepare_one", prepare_one)
    items = [CaptionImage(id=str(i), path=f"/data/{i}.jpg") for i in range(40)]
    limits = ServiceSettings().image_limits
    with pytest.raises(DecoderBusy), ThreadPoolExecutor(max_workers=2) as pool:
        await prepare_all(items, limits, [data_root], _decode_budget(), pool, 2, 256)
    # The other thread's run (images 20 to 39) stopped soon after the failure.
    assert len(decoded) < 20
