"""What leaves the service for other tools: CSV cells a spreadsheet would run are escaped,
ids and URLs that reach logs and answers carry nothing a caller can forge or a secret."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import httpx

from analysis_service.pipeline.runner import run_job
from shared.http import public_url
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import submit


async def test_csv_cells_that_look_like_formulas_are_escaped(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    make_dataset(data_root / "pets", classes=("=HYPERLINK(1)", "@dog"))
    write_image(data_root / "pets" / "@dog" / "+1 call.jpg")
    job_id = await submit(api, "pets")
    transport = httpx.ASGITransport(app=caption_app)
    assert (
        await run_job(
            uuid.UUID(job_id), analysis_settings, sessionmaker, caption_transport=transport
        )
        == "succeeded"
    )
    url = f"/v1/jobs/{job_id}/assignments"
    rows = list(csv.DictReader(io.StringIO((await api.get(url, params={"format": "csv"})).text)))
    assert rows and not any(
        cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values()
    )
    assert {row["class"] for row in rows} == {"'=HYPERLINK(1)", "'@dog"}
    assert "'@dog/+1 call.jpg" in {row["image"] for row in rows}
    # JSON keeps the raw values, for programs.
    raw = (await api.get(url)).json()["items"]
    assert {item["class"] for item in raw} == {"=HYPERLINK(1)", "@dog"}


async def test_request_ids_are_echoed_only_when_they_are_plain_tokens(api):
    kept = await api.get("/healthz", headers={"X-Request-ID": "job-42.a:b"})
    assert kept.headers["X-Request-ID"] == "job-42.a:b"
    for forged in ("x\nlevel=ERROR msg=forged", "é", "a" * 129, "a b"):
        resp = await api.get("/healthz", headers={"X-Request-ID": forged.encode("utf-8")})
        assert resp.headers["X-Request-ID"] != forged
        assert len(resp.headers["X-Request-ID"]) == 32


def test_urls_shown_or_stored_carry_no_credentials():
    assert public_url("https://user:secret@api.example.com/v1?key=abc#x") == (
        "https://api.example.com/v1"
    )
    assert public_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"
