"""A job's view names what can be done next with its results: its newest prediction sets with
their accuracy and slices, and links to the structure, groups, export and tail. The job list
reads every listed job's sets in one query."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from analysis_service.jobs import service
from analysis_service.jobs.schemas import LATEST_SETS
from benchmarks.synthetic_job import SyntheticImage, insert_job

IMAGES = [
    SyntheticImage(f"{c}/{i}.jpg", c, {"background": "water" if i % 2 else "grass"})
    for c in ("cat", "dog")
    for i in range(4)
]


async def _job(sessionmaker, status: str = "succeeded") -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, IMAGES, status=status))


def _predictions(wrong: int) -> list[dict]:
    """Every image predicted, the first `wrong` of them as the other class."""
    rows = []
    for n, image in enumerate(IMAGES):
        other = "dog" if image.class_name == "cat" else "cat"
        predicted = other if n < wrong else image.class_name
        rows.append({"image": image.relpath, "prediction": predicted})
    return rows


async def _post(api, job: str, name: str, wrong: int) -> int:
    resp = await api.post(
        f"/v1/jobs/{job}/predictions", json={"predictions": _predictions(wrong), "name": name}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def test_a_succeeded_job_names_its_sets_and_where_to_go_next(api, sessionmaker):
    job = await _job(sessionmaker)
    view = (await api.get(f"/v1/jobs/{job}")).json()
    assert view["predictions"] == {"total": 0, "latest": []}
    first = await _post(api, job, "resnet", wrong=2)
    second = await _post(api, job, "vit", wrong=0)

    view = (await api.get(f"/v1/jobs/{job}")).json()
    assert view["predictions"]["total"] == 2
    latest = view["predictions"]["latest"]
    assert [(s["id"], s["name"], s["rows"]) for s in latest] == [
        (second, "vit", 8),
        (first, "resnet", 8),
    ]
    assert [s["accuracy"] for s in latest] == [1.0, 0.75]

    # Every link answers; the groups template is filled with a dimension of the structure.
    links = view["links"]
    structure = (await api.get(links["structure"])).json()
    dimension = structure["classes"][0]["dimensions"][0]["dimension"]
    assert dimension == "background"
    urls = [
        links["predictions"],
        links["groups"].replace("{dimension}", dimension),
        links["export"],
        links["tail"],
        *(s["slices_url"] for s in latest),
    ]
    for url in urls:
        resp = await api.get(url)
        assert resp.status_code == 200, (url, resp.text)
    slices = (await api.get(latest[1]["slices_url"] + "&min_size=1")).json()
    assert slices["items"], "the set with errors has slices"


async def test_the_view_lists_the_newest_sets_and_counts_them_all(api, sessionmaker):
    job = await _job(sessionmaker)
    ids = [await _post(api, job, f"epoch-{n}", wrong=n % 3) for n in range(LATEST_SETS + 2)]
    shown = (await api.get(f"/v1/jobs/{job}")).json()["predictions"]
    assert shown["total"] == LATEST_SETS + 2
    assert [s["id"] for s in shown["latest"]] == ids[::-1][:LATEST_SETS]


async def test_a_job_that_has_not_succeeded_has_no_links(api, sessionmaker):
    for status in ("queued", "running", "failed", "cancelled"):
        view = (await api.get(f"/v1/jobs/{await _job(sessionmaker, status)}")).json()
        assert view["status"] == status
        assert view["links"] is None and view["predictions"] is None


async def test_the_list_shows_each_jobs_own_sets(api, sessionmaker):
    with_sets, without, running = (
        await _job(sessionmaker),
        await _job(sessionmaker),
        await _job(sessionmaker, "running"),
    )
    await _post(api, with_sets, "a", wrong=1)
    await _post(api, with_sets, "b", wrong=4)
    page = (await api.get("/v1/jobs?limit=10")).json()
    by_id = {j["id"]: j for j in page["items"]}
    assert [s["name"] for s in by_id[with_sets]["predictions"]["latest"]] == ["b", "a"]
    assert by_id[without]["predictions"] == {"total": 0, "latest": []}
    assert by_id[running]["predictions"] is None
    assert by_id[with_sets]["links"]["tail"] == f"/v1/jobs/{with_sets}/tail"


@pytest.mark.parametrize("jobs", [1, 4])
async def test_the_list_reads_the_sets_of_all_its_jobs_in_one_query(
    api, sessionmaker, analysis_settings, jobs
):
    for n in range(jobs):
        await _post(api, await _job(sessionmaker), f"model-{n}", wrong=n)
    statements: list[str] = []
    async with sessionmaker() as session:
        engine = session.bind.sync_engine

        def record(conn, cursor, statement, *args) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            items, total = await service.list_jobs(session, analysis_settings, 50, 0, None)
        finally:
            event.remove(engine, "before_cursor_execute", record)
    assert total == jobs and all(j.predictions and j.predictions.total == 1 for j in items)
    assert sum("prediction_set" in s for s in statements) == 1
    # The view reads the sets' stored counts, never the predictions themselves.
    assert not any("FROM prediction " in s or "prediction AS" in s for s in statements)
