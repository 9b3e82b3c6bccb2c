"""Predictions on a finished job: from a file inside DATA_ROOTS, inline, or uploaded; every
bad input answered with what is wrong and where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.synthetic_job import SyntheticImage, insert_job


def _images(per_class: int = 4) -> list[SyntheticImage]:
    return [
        SyntheticImage(f"{c}/{i}.jpg", c, {"background": "water" if i % 2 else "grass"})
        for c in ("cat", "dog")
        for i in range(per_class)
    ]


async def _job(sessionmaker, status: str = "succeeded", per_class: int = 4) -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, _images(per_class), status=status))


@pytest.fixture
async def job(sessionmaker) -> str:
    return await _job(sessionmaker)


def _rows(wrong: set[str] = frozenset()) -> list[dict]:  # type: ignore[assignment]
    rows = []
    for image in _images():
        other = "dog" if image.class_name == "cat" else "cat"
        predicted = other if image.relpath in wrong else image.class_name
        rows.append({"image": image.relpath, "prediction": predicted})
    return rows


async def test_inline_predictions_are_stored_and_listed(api, job):
    resp = await api.post(
        f"/v1/jobs/{job}/predictions",
        json={"predictions": _rows({"cat/1.jpg", "dog/3.jpg"}), "name": "resnet50-epoch90"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["rows"], body["matched"], body["errors"]) == (8, 8, 2)
    assert body["accuracy"] == pytest.approx(0.75)
    assert resp.headers["Location"].endswith(f"/predictions/{body['id']}")
    listed = (await api.get(f"/v1/jobs/{job}/predictions")).json()
    assert [(s["id"], s["name"]) for s in listed] == [(body["id"], "resnet50-epoch90")]


async def test_a_csv_file_inside_the_data_roots(api, job, data_root: Path):
    lines = ["image,prediction,label,confidence,split"] + [
        f"{r['image']},{r['prediction']},,0.9,{'train' if i % 2 else 'test'}"
        for i, r in enumerate(_rows({"cat/0.jpg"}))
    ]
    (data_root / "preds.csv").write_text("\n".join(lines) + "\n")
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions_path": "preds.csv"})
    assert resp.status_code == 201, resp.text
    assert (resp.json()["rows"], resp.json()["errors"]) == (8, 1)


async def test_a_jsonl_file_and_an_explicit_label(api, job, data_root: Path):
    rows = _rows()
    rows[0]["label"] = "dog"  # the true class said differently from the folder: now wrong
    (data_root / "preds.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions_path": "preds.jsonl"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["errors"] == 1


async def test_an_uploaded_file(api, job):
    content = "image,prediction\n" + "".join(f"{r['image']},cat\n" for r in _rows())
    resp = await api.post(
        f"/v1/jobs/{job}/predictions/upload",
        files={"file": ("preds.csv", content.encode(), "text/csv")},
        data={"name": "all-cat"},
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["name"], resp.json()["errors"]) == ("all-cat", 4)


async def test_an_upload_over_the_request_limit_is_413(api, job, analysis_settings):
    big = b"image,prediction\n" + b"x" * analysis_settings.max_request_bytes
    resp = await api.post(
        f"/v1/jobs/{job}/predictions/upload", files={"file": ("p.csv", big, "text/csv")}
    )
    assert resp.status_code == 413


async def test_a_job_that_has_not_succeeded_is_409(api, sessionmaker):
    running = await _job(sessionmaker, status="running")
    resp = await api.post(f"/v1/jobs/{running}/predictions", json={"predictions": _rows()})
    assert resp.status_code == 409
    assert "running" in resp.json()["detail"]


async def test_unknown_images_are_named_by_row_with_a_count(api, sessionmaker):
    job = await _job(sessionmaker, per_class=30)
    rows = [{"image": f"cat/{i}.jpg", "prediction": "cat"} for i in range(30)]
    rows += [{"image": f"nowhere/{i}.jpg", "prediction": "cat"} for i in range(25)]
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": rows})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "25 row(s) name images not in the job (first 20)" in detail
    assert "row 31 ('nowhere/0.jpg')" in detail and "row 50" in detail and "row 51" not in detail


async def test_classes_not_in_the_job_are_422_listing_the_classes(api, job):
    rows = _rows()
    rows[2]["prediction"] = "horse"
    rows[3]["label"] = "zebra"
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": rows})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "1 row(s) predict a class not in the job: row 3 ('horse')" in detail
    assert "1 row(s) name a true class not in the job: row 4 ('zebra')" in detail
    assert "The job's classes: cat, dog" in detail


async def test_duplicate_images_are_422(api, job):
    rows = [*_rows(), _rows()[0]]
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": rows})
    assert resp.status_code == 422
    assert (
        "2 row(s) name an image more than once: row 1 ('cat/0.jpg'), row 9"
        in (resp.json()["detail"])
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("image,prediction\n", "no predictions"),
        ("image,label\ncat/0.jpg,cat\n", "missing column(s) prediction"),
        ("image,prediction\ncat/0.jpg\n", "wrong number of cells"),
        ("image,prediction,confidence\ncat/0.jpg,cat,1.5\n", "confidence must lie in 0..1"),
        ("image,prediction\n,cat\n", "lack an image or a prediction"),
    ],
)
async def test_bad_files_are_422_saying_why(api, job, data_root: Path, content, expected):
    (data_root / "bad.csv").write_text(content)
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions_path": "bad.csv"})
    assert resp.status_code == 422, resp.text
    assert expected in resp.json()["detail"]


async def test_bad_jsonl_lines_and_non_utf8(api, job, data_root: Path):
    (data_root / "bad.jsonl").write_text(
        '{"image": "cat/0.jpg", "prediction": "cat"}\nnot json\n[1]\n'
    )
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions_path": "bad.jsonl"})
    assert resp.status_code == 422
    assert "are not JSON: row 2" in resp.json()["detail"]
    assert "are not JSON objects: row 3" in resp.json()["detail"]
    (data_root / "latin.csv").write_bytes(
        "image,prediction\ncat/0.jpg,chat\xe9\n".encode("latin-1")
    )
    resp = await api.post(f"/v1/jobs/{job}/predictions", json={"predictions_path": "latin.csv"})
    assert resp.status_code == 422
    assert "not UTF-8" in resp.json()["detail"]


async def test_paths_outside_the_roots_folders_and_missing_files(api, job, data_root, tmp_path):
    (tmp_path / "outside.csv").write_text("image,prediction\ncat/0.jpg,cat\n")
    post = f"/v1/jobs/{job}/predictions"
    outside = await api.post(post, json={"predictions_path": str(tmp_path / "outside.csv")})
    assert outside.status_code == 403
    (data_root / "folder").mkdir()
    folder = await api.post(post, json={"predictions_path": "folder"})
    assert folder.status_code == 422
    assert "is a folder; expected a CSV or JSONL file of predictions" in folder.json()["detail"]
    assert (await api.post(post, json={"predictions_path": "nope.csv"})).status_code == 404


async def test_exactly_one_source_and_unique_names(api, job):
    post = f"/v1/jobs/{job}/predictions"
    assert (await api.post(post, json={})).status_code == 422
    both = {"predictions": _rows(), "predictions_path": "p.csv"}
    assert (await api.post(post, json=both)).status_code == 422
    assert (await api.post(post, json={"predictions": _rows(), "name": "a"})).status_code == 201
    again = await api.post(post, json={"predictions": _rows(), "name": "a"})
    assert again.status_code == 409


async def test_unknown_job_is_404(api):
    resp = await api.post(
        "/v1/jobs/00000000-0000-0000-0000-000000000000/predictions", json={"predictions": _rows()}
    )
    assert resp.status_code == 404


async def test_deleting_the_job_deletes_its_predictions(api, job, sessionmaker):
    from sqlalchemy import func, select

    from analysis_service.models import Prediction, PredictionSet

    assert (
        await api.post(f"/v1/jobs/{job}/predictions", json={"predictions": _rows()})
    ).status_code == 201
    assert (await api.delete(f"/v1/jobs/{job}")).status_code == 204
    async with sessionmaker() as session:
        for table in (Prediction, PredictionSet):
            assert await session.scalar(select(func.count()).select_from(table)) == 0
