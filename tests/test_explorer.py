"""The explorer's pages and assets as served; test_explorer_browser.py drives them in a browser."""

from __future__ import annotations

import re
import uuid
from importlib import resources

import pytest

from benchmarks.synthetic_job import SyntheticImage, insert_job

IMAGES = [
    SyntheticImage(f"{c}/{i:03d}.jpg", c, {"background": "water" if i % 3 else "grass"}, f"c {i}")
    for c in ("cat", "dog")
    for i in range(60)
]
STATIC = resources.files("analysis_service.explorer") / "static"


async def _job(sessionmaker) -> str:
    async with sessionmaker() as session, session.begin():
        return str(await insert_job(session, IMAGES))


async def _subpopulations(api, job: str) -> list[dict]:
    resp = await api.get(f"/v1/jobs/{job}/subpopulations")
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def _csp(resp) -> dict[str, str]:
    policy = resp.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in policy.split("; ")}


async def test_the_jobs_page_loads_its_module_under_a_strict_policy(api):
    resp = await api.get("/ui")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    csp = _csp(resp)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' data:" and csp["connect-src"] == "'self'"
    assert '<script type="module" src="/ui/static/jobs.js"></script>' in resp.text
    assert 'id="submit-form"' in resp.text
    assert (await api.get("/ui/jobs")).text == resp.text


async def test_pages_hold_no_inline_script_or_style(api, sessionmaker):
    job = await _job(sessionmaker)
    for path in ("/ui", f"/ui/jobs/{job}", "/ui/jobs/nope"):
        html = (await api.get(path)).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert " style=" not in html and "<style" not in html, path
        assert not re.search(r"<[^>]*\son\w+=", html), path  # no event-handler attributes


async def test_the_job_page_carries_what_its_module_needs(api, sessionmaker):
    job = await _job(sessionmaker)
    sid = (await _subpopulations(api, job))[0]["id"]
    resp = await api.get(f"/ui/jobs/{job}", params={"subpopulation": sid})
    assert resp.status_code == 200
    assert f'data-job-id="{job}"' in resp.text and 'data-job-status="succeeded"' in resp.text
    assert 'data-has-images="true"' in resp.text and 'src="/ui/static/job.js"' in resp.text


@pytest.mark.parametrize("raw", [str(uuid.UUID(int=7)), "not-a-job", "x" * 300])
async def test_an_unknown_job_is_a_page_saying_so_with_404(api, raw):
    resp = await api.get(f"/ui/jobs/{raw}")
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/html")
    assert "There is no job" in resp.text and "x" * 81 not in resp.text


async def test_an_unknown_or_foreign_subpopulation_or_set_is_a_404_page(api, sessionmaker):
    job, other = await _job(sessionmaker), await _job(sessionmaker)
    foreign = (await _subpopulations(api, other))[0]["id"]
    for params in (
        {"subpopulation": foreign},
        {"subpopulation": 999999},
        {"subpopulation": "abc"},
        {"subpopulation": "-1"},
        {"predictions": 5},
    ):
        resp = await api.get(f"/ui/jobs/{job}", params=params)
        assert resp.status_code == 404, params
        assert "has no" in resp.text and "<code>" in resp.text


async def test_an_unknown_ui_address_is_a_404_page(api):
    resp = await api.get("/ui/jobs/abc/extra/<b>")
    assert resp.status_code == 404 and "There is no page" in resp.text
    assert "<b>" not in resp.text


async def test_assets_are_served_with_an_etag_and_revalidated(api):
    resp = await api.get("/ui/static/job.js")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/javascript")
    assert resp.headers["cache-control"] == "private, no-cache"
    again = await api.get("/ui/static/job.js", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    css = await api.get("/ui/static/explorer.css")
    assert css.headers["content-type"].startswith("text/css")
    for name in ("nope.js", "..%2Fhtml.py", "__init__.py"):
        assert (await api.get(f"/ui/static/{name}")).status_code == 404


def test_every_module_a_module_imports_is_shipped():
    shipped = {entry.name for entry in STATIC.iterdir()}
    for entry in STATIC.iterdir():
        if entry.name.endswith(".js"):
            for imported in re.findall(r"from '\./([\w.]+)'", entry.read_text()):
                assert imported in shipped, (entry.name, imported)
