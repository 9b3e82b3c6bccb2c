"""Keyset pages: following `next` visits every row once, in order, whatever the page size; a
cursor is checked like any input."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select, update

from analysis_service.cursors import encode
from analysis_service.models import Attribute, Dimension
from benchmarks.synthetic_job import SyntheticImage, insert_job

IMAGES = [
    SyntheticImage(
        f"{c}/{i:02d}.jpg",
        c,
        {"background": ("water", "grass", "snow")[i % 3], "pose": ("sitting", "running")[i % 2]},
    )
    for c in ("cat", "dog", "eel")
    for i in range(7)
]


@pytest.fixture
async def job_id(sessionmaker) -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, IMAGES))


async def _walk(api, path: str, limit: int, **filters) -> list[dict]:
    items, after, pages = [], None, 0
    while True:
        params = filters | {"limit": limit} | ({"after": after} if after else {})
        page = (await api.get(path, params=params)).json()
        items += page["items"]
        pages += 1
        assert pages <= len(IMAGES) * 2 + 2, "the cursor does not advance"
        if (after := page["next"]) is None:
            return items


@pytest.mark.parametrize("limit", [1, 4, 1000])
async def test_subpopulation_pages_cover_every_subpopulation_once_in_order(api, job_id, limit):
    walked = await _walk(api, f"/v1/jobs/{job_id}/subpopulations", limit)
    everything = (await api.get(f"/v1/jobs/{job_id}/subpopulations")).json()["items"]
    assert walked == everything
    assert len(everything) == 3 * (3 + 2)  # classes x (backgrounds + poses)
    assert [s["class"] for s in everything] == sorted(s["class"] for s in everything)


async def test_subpopulation_pages_keep_their_filters(api, job_id):
    path = f"/v1/jobs/{job_id}/subpopulations"
    walked = await _walk(api, path, 1, **{"class": "dog", "min_size": 3})
    assert walked and {s["class"] for s in walked} == {"dog"}
    assert all(s["size"] >= 3 for s in walked)


@pytest.mark.parametrize("class_", [None, "dog"])
@pytest.mark.parametrize("dimension", [None, "pose"])
@pytest.mark.parametrize("min_size", [0, 3])
async def test_every_choice_of_filters_pages_what_the_filter_leaves(
    api, job_id, class_, dimension, min_size
):
    """Each choice of filters has its own statement: each gives, a page at a time, exactly
    the rows of the whole listing that pass the filters, in its order."""
    path = f"/v1/jobs/{job_id}/subpopulations"
    everything = (await api.get(path)).json()["items"]
    expected = [
        s
        for s in everything
        if class_ in (None, s["class"])
        and dimension in (None, s["dimension"])
        and s["size"] >= min_size
    ]
    filters = {"class": class_, "dimension": dimension, "min_size": min_size}
    walked = await _walk(api, path, 2, **{k: v for k, v in filters.items() if v is not None})
    assert walked == expected and expected


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_subpopulation_pages_with_tied_positions_keep_every_row_once_in_order(
    api, sessionmaker, job_id, limit
):
    """A cursor's class and dimension position bound where the walk of the job's dimensions
    starts and the attribute's position and id bound the rest: with positions tied within a
    class (dimensions and attributes alike), the pages still go by (class, dimension position,
    attribute position, id), each row once; another job's rows never show."""
    async with sessionmaker() as session, session.begin():
        other_job = str(await insert_job(session, IMAGES))
        await session.execute(update(Dimension).values(position=0))
        await session.execute(update(Attribute).values(position=0))
        # One dimension of each class after the tie, so positions still order something.
        pose = Dimension.name == "pose"
        await session.execute(update(Dimension).where(pose).values(position=1))
        rows = await session.execute(
            select(Attribute.id, Dimension.class_name, Dimension.position, Attribute.position)
            .join(Dimension, Dimension.id == Attribute.dimension_id)
            .where(Dimension.job_id == job_id)
        )
        expected = [r.id for r in sorted(rows, key=lambda r: (r[1], r[2], r[3], r[0]))]
    walked = await _walk(api, f"/v1/jobs/{job_id}/subpopulations", limit)
    assert [s["id"] for s in walked] == expected and len(expected) == 3 * (3 + 2)
    other = await _walk(api, f"/v1/jobs/{other_job}/subpopulations", limit)
    assert len(other) == len(expected) and not {s["id"] for s in other} & set(expected)


@pytest.mark.parametrize("limit", [1, 5, 10000])
async def test_assignment_pages_cover_every_row_once(api, job_id, limit):
    walked = await _walk(api, f"/v1/jobs/{job_id}/assignments", limit)
    keys = [(r["image"], r["dimension"]) for r in walked]
    assert len(keys) == len(set(keys)) == len(IMAGES) * 2
    by_offset = (await api.get(f"/v1/jobs/{job_id}/assignments", params={"limit": 10000})).json()
    assert by_offset["items"] == walked and by_offset["total"] == len(keys)


def _raw(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "after",
    [
        "not base64 at all!",
        "é",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not JSON
        _raw({"a": 1}),
        _raw([1, 2]),  # the assignment key's shape, given to the subpopulation list
        _raw(["cat", 0, 0, True]),  # a bool is not an id
        _raw(["cat", 0, 0, 2**63]),  # past bigint
        _raw(["ca\u0000t", 0, 0, 1]),  # NUL: Postgres text cannot hold it
        '["cat", 0, 0, 1]',  # JSON, not base64 of it
        "A" * 7000,  # longer than any cursor
        "\U0001d934" * 5000,  # under the length limit, but no cursor: 60 KB once in a URL
    ],
)
async def test_forged_or_foreign_cursors_are_422(api, job_id, after):
    resp = await api.get(f"/v1/jobs/{job_id}/subpopulations", params={"after": after})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] in ("invalid_request", "validation_error")


async def test_a_lone_surrogate_in_a_cursor_is_422(api, job_id):
    forged = base64.urlsafe_b64encode(b'["\\ud800", 0, 0, 1]').decode()
    resp = await api.get(f"/v1/jobs/{job_id}/subpopulations", params={"after": forged})
    assert resp.status_code == 422


async def test_a_cursor_past_the_end_gives_an_empty_last_page(api, job_id):
    after = encode(("zzz", 0, 0, 1))
    page = (await api.get(f"/v1/jobs/{job_id}/subpopulations", params={"after": after})).json()
    assert page == {"items": [], "limit": 100, "next": None}
    assignments = f"/v1/jobs/{job_id}/assignments"
    page = (await api.get(assignments, params={"after": encode((2**62, 1))})).json()
    assert page["items"] == [] and page["next"] is None


async def test_the_structure_of_one_class(api, job_id):
    """A thousand-class job's tree is fetched a class at a time."""
    whole = (await api.get(f"/v1/jobs/{job_id}/structure")).json()["classes"]
    dog = (await api.get(f"/v1/jobs/{job_id}/structure", params={"class": "dog"})).json()
    assert dog["classes"] == [c for c in whole if c["class"] == "dog"]
    none = (await api.get(f"/v1/jobs/{job_id}/structure", params={"class": "owl"})).json()
    assert none["classes"] == []
