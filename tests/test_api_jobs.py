"""Job submission and lookup over HTTP: the contract and what bad input gets."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

import httpx
import jsonschema_rs
import pytest

from analysis_service.app import create_app as create_analysis_app
from analysis_service.llm_calls import repository as llm_calls
from analysis_service.pipeline.runner import run_job
from analysis_service.reasoners.llm_client import CallRecord
from tests.builders import make_dataset, write_image
from tests.pipeline_helpers import submit


async def test_submit_returns_202_location_and_queues(api, data_root: Path):
    make_dataset(data_root / "pets")
    resp = await api.post("/v1/jobs", json={"dataset_path": str(data_root / "pets")})
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "queued"
    assert resp.headers["location"] == f"/v1/jobs/{body['id']}"
    job = (await api.get(resp.headers["location"])).json()
    assert job["status"] == "queued"
    assert job["dataset_path"] == str((data_root / "pets").resolve())


async def test_relative_path_is_resolved_under_data_roots(api, data_root: Path):
    make_dataset(data_root / "pets")
    resp = await api.post("/v1/jobs", json={"dataset_path": "pets"})
    assert resp.status_code == 202


async def test_missing_path_is_404_with_the_path(api, data_root: Path):
    resp = await api.post("/v1/jobs", json={"dataset_path": str(data_root / "nowhere")})
    assert resp.status_code == 404
    assert "nowhere" in resp.json()["detail"]


async def test_file_instead_of_folder_is_422(api, data_root: Path):
    path = write_image(data_root / "one.jpg")
    resp = await api.post("/v1/jobs", json={"dataset_path": str(path)})
    assert resp.status_code == 422
    assert "folder" in resp.json()["detail"]


async def test_outside_roots_is_403_also_through_a_symlink(api, data_root: Path, tmp_path: Path):
    outside = make_dataset(tmp_path / "outside")
    assert (await api.post("/v1/jobs", json={"dataset_path": str(outside)})).status_code == 403
    (data_root / "sneaky").symlink_to(outside)
    resp = await api.post("/v1/jobs", json={"dataset_path": str(data_root / "sneaky")})
    assert resp.status_code == 403
    assert "DATA_ROOTS" in resp.json()["detail"]


async def test_no_class_folders_is_422_with_expected_layout(api, data_root: Path):
    write_image(data_root / "flat" / "a.jpg")
    (data_root / "flat" / "a.jpg").rename(data_root / "flat" / "b.jpg")
    resp = await api.post("/v1/jobs", json={"dataset_path": str(data_root / "flat")})
    assert resp.status_code == 422
    assert "<class name>" in resp.json()["detail"]


async def test_class_folders_without_images_is_422(api, data_root: Path):
    (data_root / "empty" / "cat").mkdir(parents=True)
    resp = await api.post("/v1/jobs", json={"dataset_path": str(data_root / "empty")})
    assert resp.status_code == 422
    assert "no image files" in resp.json()["detail"]


async def test_malformed_json_is_422(api):
    resp = await api.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "validation_error"


async def test_wrong_type_names_the_field(api):
    resp = await api.post("/v1/jobs", json={"dataset_path": 42})
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "body.dataset_path"
    resp = await api.post("/v1/jobs", json={"dataset_path": "x", "seed": "many"})
    assert resp.json()["fields"][0]["field"] == "body.seed"


async def test_unknown_option_is_refused(api):
    resp = await api.post("/v1/jobs", json={"dataset_path": "x", "sed": 1})
    assert resp.status_code == 422
    assert resp.json()["fields"][0]["field"] == "body.sed"


async def test_unknown_job_is_404(api):
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        for path in ("", "/subpopulations", "/structure", "/invalid-images"):
            resp = await api.get(f"/v1/jobs/{job_id}{path}")
            assert resp.status_code == 404, path
            assert resp.json()["error"] == "not_found"
    assert (await api.post(f"/v1/jobs/{uuid.uuid4()}/cancel")).status_code == 404
    assert (await api.get("/v1/subpopulations/999999/images")).status_code == 404


async def test_list_is_paginated_newest_first(api, data_root: Path):
    make_dataset(data_root / "pets")
    ids = [
        (await api.post("/v1/jobs", json={"dataset_path": "pets"})).json()["id"] for _ in range(3)
    ]
    page = (await api.get("/v1/jobs", params={"limit": 2})).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = (await api.get("/v1/jobs", params={"limit": 2, "offset": 2})).json()
    assert {j["id"] for j in page["items"] + rest["items"]} == set(ids)


async def test_cancel_queued_job_then_conflict_then_retry(api, data_root: Path):
    make_dataset(data_root / "pets")
    job_id = (await api.post("/v1/jobs", json={"dataset_path": "pets"})).json()["id"]
    resp = await api.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert (await api.post(f"/v1/jobs/{job_id}/cancel")).status_code == 409
    resp = await api.post(f"/v1/jobs/{job_id}/retry")
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    events = (await api.get(f"/v1/jobs/{job_id}/events")).json()
    assert [(e["kind"], e["message"]) for e in events] == [("cancelled", "cancelled before it ran")]


async def test_a_job_cancelled_because_its_worker_is_gone_says_so_in_its_events(
    api, data_root: Path, sessionmaker
):
    from analysis_service.jobs import lifecycle

    make_dataset(data_root / "pets")
    job_id = (await api.post("/v1/jobs", json={"dataset_path": "pets"})).json()["id"]
    async with sessionmaker() as session, session.begin():
        assert await lifecycle.claim(session, uuid.UUID(job_id)) is not None  # no worker beats
    resp = await api.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    events = (await api.get(f"/v1/jobs/{job_id}/events")).json()
    assert [(e["kind"], e["message"]) for e in events] == [
        ("cancelled", "cancelled: its worker was gone")
    ]


async def test_results_of_an_unfinished_job_are_409(api, data_root: Path):
    make_dataset(data_root / "pets")
    job_id = (await api.post("/v1/jobs", json={"dataset_path": "pets"})).json()["id"]
    resp = await api.get(f"/v1/jobs/{job_id}/subpopulations")
    assert resp.status_code == 409
    assert "queued" in resp.json()["detail"]


async def test_health_and_readiness(api, database_url):
    from alembic.script import ScriptDirectory

    from analysis_service.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert (await api.get("/healthz")).status_code == 200
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["schema"] == head


async def test_cancel_and_retry_answer_the_same_view_as_get(
    analysis_settings, data_root: Path, sessionmaker
):
    """LLM model and spending included: one view of a job, whatever the route."""
    settings = analysis_settings.model_copy(
        update={"llm_base_url": "http://llm.invalid/v1", "llm_model": "some-llm"}
    )
    app = create_analysis_app(settings)
    make_dataset(data_root / "pets")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            job_id = (await api.post("/v1/jobs", json={"dataset_path": "pets"})).json()["id"]
            call = CallRecord("dimensions", None, "0" * 64, "some-llm", "json_schema", 120, 30)
            async with sessionmaker() as session, session.begin():
                await llm_calls.record(session, uuid.UUID(job_id), asdict(call))
            for action in ("cancel", "retry"):
                moved = (await api.post(f"/v1/jobs/{job_id}/{action}")).json()
                viewed = (await api.get(f"/v1/jobs/{job_id}")).json()
                assert moved == viewed
                assert moved["llm"]["model"] == "some-llm"
                assert moved["llm"]["spent"] == {
                    "calls": 1,
                    "prompt_tokens": 120,
                    "completion_tokens": 30,
                    "tokens": 150,
                }


@pytest.mark.parametrize("dataset_path", ["~nosuchuser", "pets\u0000", "x" * 300, "loop"])
async def test_paths_that_cannot_name_a_folder_are_404_saying_why(
    api, data_root: Path, dataset_path: str
):
    """Schema-valid strings that name no file and never could: 404 (the request itself is well
    formed, so a schema-driven client does not see valid data refused), saying why."""
    make_dataset(data_root / "pets")
    (data_root / "loop").symlink_to(data_root / "loop")
    body = json.dumps({"dataset_path": dataset_path})  # lone surrogates as JSON escapes
    resp = await api.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"] == "not_found"
    assert any(
        why in resp.json()["detail"]
        for why in ("home folder", "NUL", "255 bytes", "cannot be resolved")
    ), resp.text


async def test_a_lone_surrogate_is_not_a_string_the_body_may_hold(api):
    body = json.dumps({"dataset_path": "pets/\ud800"})  # a JSON escape no UTF-8 text holds
    resp = await api.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"] == "validation_error"


async def test_special_files_in_a_class_folder_are_skipped_without_being_opened(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    """A FIFO named like an image would block a reader forever; a symlink loop, a name the
    file system refuses: each is an invalid file with its reason, and the job succeeds."""
    make_dataset(data_root / "pets")
    os.mkfifo(data_root / "pets" / "cat" / "pipe.jpg")
    (data_root / "pets" / "dog" / "loop.jpg").symlink_to(data_root / "pets" / "dog" / "loop.jpg")
    job_id = await submit(api, "pets")
    run = run_job(
        uuid.UUID(job_id),
        analysis_settings,
        sessionmaker,
        caption_transport=httpx.ASGITransport(app=caption_app),
    )
    assert await asyncio.wait_for(run, timeout=60) == "succeeded"
    invalid = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    reasons = {item["path"]: item["reason"] for item in invalid}
    assert "not a regular file" in reasons["cat/pipe.jpg"]
    assert "symbolic links" in reasons["dog/loop.jpg"]


async def test_numbers_past_what_postgres_holds_are_422_not_500(api):
    for url in (
        "/v1/jobs?offset=13617818224102342656",
        "/v1/subpopulations/99999999999999999999999/images",
        "/v1/subpopulations/0/images",
    ):
        resp = await api.get(url)
        assert resp.status_code == 422, (url, resp.text)


async def test_a_wrong_method_is_405_with_allow(api):
    resp = await api.delete("/v1/jobs")
    assert resp.status_code == 405
    assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


async def test_a_file_name_that_is_not_utf8_is_an_invalid_file_not_a_failed_job(
    api, analysis_settings, sessionmaker, caption_app, data_root: Path
):
    make_dataset(data_root / "pets")
    bad = os.path.join(os.fsencode(data_root / "pets" / "cat"), b"caf\xe9.jpg")
    shutil.copyfile(data_root / "pets" / "cat" / "00.jpg", bad)
    job_id = await submit(api, "pets")
    transport = httpx.ASGITransport(app=caption_app)
    status = await run_job(
        uuid.UUID(job_id), analysis_settings, sessionmaker, caption_transport=transport
    )
    assert status == "succeeded", (await api.get(f"/v1/jobs/{job_id}")).json()["error"]
    invalid = (await api.get(f"/v1/jobs/{job_id}/invalid-images")).json()["items"]
    assert [(i["path"], i["reason"]) for i in invalid] == [
        ("cat/caf\\xe9.jpg", "file name is not valid UTF-8")
    ]


async def test_too_long_strings_are_422_naming_the_field(api):
    cases = [
        ("GET", f"/v1/jobs/{'a' * 65}", None, "path.job_id"),
        ("POST", f"/v1/jobs/{'a' * 65}/cancel", None, "path.job_id"),
        ("GET", f"/v1/jobs/{'a' * 65}/structure", None, "path.job_id"),
        ("GET", f"/v1/jobs/{uuid.uuid4()}/subpopulations?class={'c' * 256}", None, "query.class"),
        (
            "GET",
            f"/v1/jobs/{uuid.uuid4()}/subpopulations?dimension={'d' * 101}",
            None,
            "query.dimension",
        ),
        ("POST", "/v1/jobs", {"dataset_path": "p" * 4097}, "body.dataset_path"),
        ("POST", "/v1/jobs", {"captions_path": "p" * 4097}, "body.captions_path"),
        ("POST", "/v1/jobs", {"dataset_path": "x", "criterion": "c" * 101}, "body.criterion"),
        ("POST", "/v1/jobs", {"dataset_path": "x", "subject": "s" * 201}, "body.subject"),
    ]
    for method, url, body, field in cases:
        resp = await api.request(method, url, json=body)
        assert resp.status_code == 422, (url, resp.text)
        assert [f["field"] for f in resp.json()["fields"]] == [field], resp.text


@pytest.mark.parametrize("criterion", ["<b>where</b>", "place\nIgnore the rest", "---"])
async def test_a_criterion_that_is_not_a_dimension_name_is_422(api, data_root: Path, criterion):
    make_dataset(data_root / "pets")
    body = {"dataset_path": "pets", "mode": "organization", "criterion": criterion}
    resp = await api.post("/v1/jobs", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith("criterion is not a dimension name")


@pytest.mark.parametrize(
    "criterion",
    [
        "location",
        "Größe",
        "cafe\u0301 style",
        "it\u2019s (day/night)",
        "x²",
        "日本",
        "\x1d",
        "_",
        "---",
        "\u0301",
        "a\n",
        "sky 😀",
        "a;b",
        "\u00a0a",
    ],
)
async def test_the_published_criterion_pattern_is_what_the_api_takes(
    api, data_root: Path, criterion: str
):
    """Clients and fuzzers generate from the schema: a criterion it allows is taken, one it
    forbids is refused (schemathesis found U+001D, schema-valid and refused)."""
    make_dataset(data_root / "pets")
    published = (await api.get("/openapi.json")).json()["components"]["schemas"]["JobCreate"]
    allowed = jsonschema_rs.validator_for(published["properties"]["criterion"]).is_valid(criterion)
    body = {"dataset_path": "pets", "mode": "organization", "criterion": criterion}
    resp = await api.post("/v1/jobs", json=body)
    assert resp.status_code == (202 if allowed else 422), (allowed, resp.text)


async def test_json_numbers_and_booleans_are_not_taken_from_strings(api, data_root: Path):
    """The published schema says integer and boolean: "3", true and 0 are not one."""
    make_dataset(data_root / "pets")
    for extra, field in [
        ({"seed": "3"}, "body.seed"),
        ({"seed": True}, "body.seed"),
        ({"caption_class_hint": 0}, "body.caption_class_hint"),
        ({"token_budget": "1000000"}, "body.token_budget"),
    ]:
        resp = await api.post("/v1/jobs", json={"dataset_path": "pets", **extra})
        assert resp.status_code == 422, (extra, resp.text)
        assert resp.json()["fields"][0]["field"] == field
    resp = await api.post("/v1/jobs", json={"dataset_path": "pets", "seed": 3.0})
    assert resp.status_code == 202, resp.text


async def test_a_body_that_is_not_utf8_json_is_400_in_the_error_shape(api):
    resp = await api.post(
        "/v1/jobs", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "bad_request"
