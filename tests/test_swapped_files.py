"""Files changed or swapped after they were checked: the caption stored for a content hash is
always the caption of those bytes, and nothing outside the roots is read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from analysis_service.models import Caption
from analysis_service.pipeline import scan
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import CountingTransport, run, submit


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _captions_of(sessionmaker, content_hash: str) -> int:
    async with sessionmaker() as session:
        query = (
            select(func.count()).select_from(Caption).where(Caption.content_hash == content_hash)
        )
        return int(await session.scalar(query) or 0)


def _after_the_scan(monkeypatch: pytest.MonkeyPatch, change) -> None:  # type: ignore[no-untyped-def]
    """Run `change` once the scan stage has hashed every file, before captioning."""
    real = scan.run

    async def scan_then_change(ctx, root):  # type: ignore[no-untyped-def]
        await real(ctx, root)
        change()

    monkeypatch.setattr(scan, "run", scan_then_change)


@pytest.mark.parametrize("send", ["path", "data"])
async def test_a_file_changed_after_the_scan_gets_an_error_not_a_caption(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, monkeypatch, send: str
):
    root = make_dataset(data_root / "pets", per_class=3)
    changed = root / "cat" / "01.jpg"
    scanned = _sha256(changed)
    _after_the_scan(monkeypatch, lambda: write_image(changed, color=(1, 2, 3), size=(70, 50)))
    settings = analysis_settings.model_copy(update={"caption_send": send})
    job_id = await submit(api, "pets")
    assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) == "succeeded"
    assert _sha256(changed) != scanned
    assert await _captions_of(sessionmaker, scanned) == 0
    assert await _captions_of(sessionmaker, _sha256(changed)) == 0
    invalid = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    assert [(i["path"], i["reason"]) for i in invalid] == [
        ("cat/01.jpg", "caption failed: file changed since it was scanned")
    ]
    assert (await api.get(f"/v1/jobs/{job_id}")).json()["valid"] == 5  # the rest analysed


@pytest.mark.parametrize("send", ["path", "data"])
async def test_a_file_swapped_for_a_symlink_out_of_the_roots_is_not_read(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path, tmp_path, monkeypatch, send
):
    root = make_dataset(data_root / "pets", per_class=3)
    swapped = root / "dog" / "02.jpg"
    scanned = _sha256(swapped)
    secret = write_image(tmp_path / "outside" / "secret.jpg", color=(9, 9, 9))

    def swap() -> None:
        swapped.unlink()
        swapped.symlink_to(secret)

    _after_the_scan(monkeypatch, swap)
    settings = analysis_settings.model_copy(update={"caption_send": send})
    job_id = await submit(api, "pets")
    assert await run(job_id, settings, sessionmaker, CountingTransport(caption_app)) == "succeeded"
    assert await _captions_of(sessionmaker, scanned) == 0
    assert await _captions_of(sessionmaker, _sha256(secret)) == 0
    invalid = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    assert [i["path"] for i in invalid] == ["dog/02.jpg"]
    assert "outside the allowed data roots" in invalid[0]["reason"]


async def test_a_captions_file_swapped_for_a_symlink_out_of_the_roots_is_not_read(
    api, analysis_settings, sessionmaker, data_root: Path, tmp_path: Path
):
    rows = "animals,img_name,caption\ndog,d1.jpg,A dog.\ncat,c1.jpg,A cat.\n"
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(rows)
    captions = data_root / "caps.csv"
    captions.write_text(rows)
    resp = await api.post("/v1/jobs", json={"captions_path": "caps.csv"})
    assert resp.status_code == 202, resp.text
    captions.unlink()
    captions.symlink_to(secret)
    # Named again by a request it is refused; a job that already has it fails.
    again = await api.post("/v1/jobs", json={"captions_path": "caps.csv"})
    assert again.status_code == 403
    job_id = resp.json()["id"]
    assert await run(job_id, analysis_settings, sessionmaker, None) == "failed"
    job = (await api.get(f"/v1/jobs/{job_id}")).json()
    assert "outside the allowed data roots" in job["error"]
    assert job["valid"] == 0 and "import" not in job["progress"]
