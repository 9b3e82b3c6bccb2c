"""A subpopulation's images a page at a time: by image id after a cursor (keyset, what the
explorer's grids read), or by offset as before."""

from __future__ import annotations

import pytest

from analysis_service import cursors
from benchmarks.synthetic_job import SyntheticImage, insert_job

IMAGES = [
    SyntheticImage(f"{c}/{i:03d}.jpg", c, {"background": "water" if i % 3 else "grass"}, f"c {i}")
    for c in ("cat", "dog")
    for i in range(60)
]


async def _job(sessionmaker) -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, IMAGES))


async def _subpopulations(api, job: str) -> list[dict]:
    resp = await api.get(f"/v1/jobs/{job}/subpopulations")
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def test_keyset_pages_cover_every_image_once_in_id_order(api, sessionmaker):
    job = await _job(sessionmaker)
    for sub in await _subpopulations(api, job):
        seen, after, pages = [], None, 0
        while True:
            params = {"limit": 7} | ({} if after is None else {"after": after})
            resp = await api.get(f"/v1/subpopulations/{sub['id']}/images", params=params)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            assert page["total"] == sub["size"]
            seen += [item["image_id"] for item in page["items"]]
            pages += 1
            if page["next"] is None:
                break
            after = page["next"]
        assert seen == sorted(set(seen)) and len(seen) == sub["size"]
        assert pages == -(-sub["size"] // 7)


async def test_offset_pages_still_work_and_agree_with_keyset(api, sessionmaker):
    job = await _job(sessionmaker)
    sid = (await _subpopulations(api, job))[0]["id"]
    url = f"/v1/subpopulations/{sid}/images"
    first = (await api.get(url, params={"limit": 10})).json()
    by_offset = (await api.get(url, params={"limit": 10, "offset": 10})).json()
    by_key = (await api.get(url, params={"limit": 10, "after": first["next"]})).json()
    assert by_offset["items"] == by_key["items"] and by_offset["offset"] == 10
    assert all(item["caption"].startswith("c ") for item in by_key["items"])


async def test_an_offset_after_a_cursor_skips_from_the_cursor(api, sessionmaker):
    job = await _job(sessionmaker)
    sid = (await _subpopulations(api, job))[0]["id"]
    url = f"/v1/subpopulations/{sid}/images"
    everything = (await api.get(url, params={"limit": 1000})).json()["items"]
    first = (await api.get(url, params={"limit": 5})).json()
    page = (await api.get(url, params={"limit": 4, "offset": 3, "after": first["next"]})).json()
    assert page["items"] == everything[8:12]


@pytest.mark.parametrize(
    "after",
    [
        "abc",
        "@@@@",  # not base64
        cursors.encode(("dog", 1)),  # another listing's key
        cursors.encode(("7",)),  # an id spelled as text
        cursors.encode((2**63,)),  # past a bigint
        "x" * 6001,
    ],
)
async def test_an_after_that_is_not_a_cursor_of_this_listing_is_422(api, sessionmaker, after):
    job = await _job(sessionmaker)
    sid = (await _subpopulations(api, job))[0]["id"]
    resp = await api.get(f"/v1/subpopulations/{sid}/images", params={"after": after})
    assert resp.status_code == 422 and "after" in resp.text


async def test_a_cursor_past_the_last_image_is_an_empty_last_page(api, sessionmaker):
    job = await _job(sessionmaker)
    sid = (await _subpopulations(api, job))[0]["id"]
    resp = await api.get(
        f"/v1/subpopulations/{sid}/images", params={"after": cursors.encode((2**62,))}
    )
    page = resp.json()
    assert resp.status_code == 200 and page["items"] == [] and page["next"] is None
