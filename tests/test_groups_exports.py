"""Group labels and exports load in pyarrow with one row per image and ids consistent with
the job; every dimension becomes a column, and a class lacking one is empty there."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from benchmarks.synthetic_job import SyntheticImage, insert_job


def _images() -> list[SyntheticImage]:
    cats = [
        SyntheticImage(
            f"cat/{i}.jpg",
            "cat",
            {"background": ("water", "grass")[i % 2], "pose": ("sitting", "lying", "other")[i % 3]},
            caption=f"a cat {i}",
        )
        for i in range(12)
    ]
    dogs = [
        SyntheticImage(
            f"dog/{i}.jpg", "dog", {"background": ("grass", "=snow")[i % 2]}, caption=f"a dog {i}"
        )
        for i in range(8)
    ]
    return cats + dogs


@pytest.fixture
async def job(sessionmaker) -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, _images()))


async def _predict(api, job: str) -> int:
    rows = [
        {
            "image": m.relpath,
            "prediction": "dog" if i % 5 == 0 else m.class_name,
            "split": ("train", "val", "test")[i % 3],
        }
        for i, m in enumerate(_images())
    ]
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": rows, "name": "m1"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def test_group_csv_loads_with_one_row_per_image_and_consistent_ids(api, job):
    set_id = await _predict(api, job)
    resp = await api.get(
        f"/v1/jobs/{job}/groups",
        params={"dimension": "background", "format": "csv", "predictions": set_id},
    )
    assert resp.status_code == 200, resp.text
    table = pacsv.read_csv(io.BytesIO(resp.content)).to_pylist()
    assert len(table) == len(_images()) == len({r["filename"] for r in table})
    attributes = ["water", "grass", "=snow"]
    for row in table:
        image = next(m for m in _images() if m.relpath == row["filename"])
        assert row["y"] == ["cat", "dog"].index(image.class_name)
        assert row["a"] == attributes.index(image.attributes["background"])
        assert row["group"] == row["y"] * len(attributes) + row["a"]
        assert row["split"] in {"train", "val", "test"}
    assert {r["attribute"] for r in table} == {"water", "grass", "'=snow"}  # spreadsheet-safe


async def test_group_json_pages_and_a_dimension_some_class_lacks(api, job):
    first = (
        await api.get(f"/v1/jobs/{job}/groups", params={"dimension": "background", "limit": 15})
    ).json()
    assert (first["classes"], first["attributes"], first["n_groups"]) == (
        ["cat", "dog"],
        ["water", "grass", "=snow"],
        6,
    )
    rest = (
        await api.get(
            f"/v1/jobs/{job}/groups",
            params={"dimension": "background", "after": first["next_after"]},
        )
    ).json()
    assert len(first["items"]) + len(rest["items"]) == 20 and rest["next_after"] is None
    lacking = await api.get(f"/v1/jobs/{job}/groups", params={"dimension": "pose"})
    assert lacking.status_code == 422
    assert "cat: background, pose; dog: background" in lacking.json()["detail"]
    cats = await api.get(f"/v1/jobs/{job}/groups", params={"dimension": "pose", "class": "cat"})
    assert cats.status_code == 200 and len(cats.json()["items"]) == 12
    missing_set = await api.get(
        f"/v1/jobs/{job}/groups", params={"dimension": "background", "predictions": 999}
    )
    assert missing_set.status_code == 404


async def test_parquet_export_has_every_dimension_and_each_sets_answers(api, job):
    await _predict(api, job)
    resp = await api.get(f"/v1/jobs/{job}/export", params={"format": "parquet"})
    assert resp.status_code == 200, resp.text
    table = pq.read_table(io.BytesIO(resp.content))
    assert table.column_names == [
        "file_name",
        "class",
        "caption",
        "background",
        "pose",
        "m1_prediction",
        "m1_correct",
    ]
    rows = table.to_pylist()
    assert len(rows) == 20 == len({r["file_name"] for r in rows})
    by_name = {r["file_name"]: r for r in rows}
    assert by_name["dog/1.jpg"]["pose"] is None and by_name["dog/1.jpg"]["background"] == "=snow"
    assert by_name["cat/0.jpg"]["m1_correct"] is False and by_name["cat/1.jpg"]["m1_correct"]
    assert by_name["cat/4.jpg"]["caption"] == "a cat 4"


async def test_csv_and_jsonl_exports(api, job):
    csv_rows = list(
        csv.DictReader(io.StringIO((await api.get(f"/v1/jobs/{job}/export?format=csv")).text))
    )
    assert len(csv_rows) == 20
    assert {r["background"] for r in csv_rows if r["class"] == "dog"} == {"grass", "'=snow"}
    lines = (await api.get(f"/v1/jobs/{job}/export?format=jsonl")).text.splitlines()
    assert len(lines) == 20 and json.loads(lines[0])["file_name"] == "cat/0.jpg"


async def test_parquet_streams_in_row_groups(api, sessionmaker, monkeypatch):
    from analysis_service.exports import writers

    monkeypatch.setattr(writers, "BATCH_ROWS", 7)
    async with sessionmaker() as session, session.begin():
        job = str(await insert_job(session, _images()))
    resp = await api.get(f"/v1/jobs/{job}/export")
    parquet = pq.ParquetFile(io.BytesIO(resp.content))
    assert parquet.metadata.num_rows == 20 and parquet.metadata.num_row_groups == 3


async def test_a_prediction_set_named_like_a_formula_is_escaped_in_csv_headers(api, job):
    rows = [{"image": m.relpath, "prediction": m.class_name} for m in _images()]
    body = {"predictions": rows, "name": "=HYPERLINK(1)"}
    assert (await api.post(f"/v1/jobs/{job}/predictions", json=body)).status_code == 201
    text = (await api.get(f"/v1/jobs/{job}/export?format=csv")).text
    header = next(csv.reader(io.StringIO(text)))
    assert header[-2:] == ["'=HYPERLINK(1)_prediction", "'=HYPERLINK(1)_correct"]
    jsonl = (await api.get(f"/v1/jobs/{job}/export?format=jsonl")).text.splitlines()
    assert "=HYPERLINK(1)_prediction" in json.loads(jsonl[0])  # JSON keeps the raw name


async def test_pages_of_the_export_keep_each_images_own_cells(api, sessionmaker, monkeypatch):
    """Pages smaller than the job, images left out between others (a caption error, an
    invalid file) and a second set answering only some images: every row still carries its
    own image's attributes and answers, as the job stored them."""
    from sqlalchemy import select, update

    from analysis_service.exports import writers
    from analysis_service.models import Image, JobImage

    monkeypatch.setattr(writers, "BATCH_ROWS", 3)
    images = _images()
    async with sessionmaker() as session, session.begin():
        job_id = await insert_job(session, images)
        found = await session.execute(
            select(Image.relpath, Image.id)
            .join(JobImage, JobImage.image_id == Image.id)
            .where(JobImage.job_id == job_id)
        )
        ids = {relpath: image_id for relpath, image_id in found}
        await session.execute(
            update(JobImage)
            .where(JobImage.job_id == job_id, JobImage.image_id == ids["cat/4.jpg"])
            .values(caption_error="unreadable")
        )
        await session.execute(
            update(Image).where(Image.id == ids["dog/2.jpg"]).values(invalid_reason="truncated")
        )
    job = str(job_id)
    await _predict(api, job)
    some = [
        {"image": m.relpath, "prediction": "cat"} for m in images if m.relpath.endswith("1.jpg")
    ]
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": some, "name": "m2"})
    assert resp.status_code == 201, resp.text

    table = pq.read_table(io.BytesIO((await api.get(f"/v1/jobs/{job}/export")).content))
    rows = {r["file_name"]: r for r in table.to_pylist()}
    expected = {m.relpath for m in images} - {"cat/4.jpg", "dog/2.jpg"}
    assert rows.keys() == expected
    for m in images:
        if m.relpath not in expected:
            continue
        row = rows[m.relpath]
        assert row["class"] == m.class_name and row["caption"] == m.caption
        assert row["background"] == m.attributes["background"]
        assert row["pose"] == m.attributes.get("pose")
        answered = m.relpath.endswith("1.jpg")
        assert row["m2_prediction"] == ("cat" if answered else None)
        assert row["m2_correct"] == ((m.class_name == "cat") if answered else None)
    assert [r["file_name"] for r in table.to_pylist()] == [
        m.relpath for m in images if m.relpath in expected
    ]  # image order, as inserted
