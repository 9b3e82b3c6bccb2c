"""The explorer in a real browser: headless Chromium (Playwright's Python API, pointed at the
system's chromium) against a live server on loopback, on finished jobs with real image files.

Without a browser the module is skipped, saying why; with REQUIRE_BROWSER=1 (CI) that is a
failure instead."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from analysis_service.app import create_app as create_analysis_app
from analysis_service.database_admin import scratch_database
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.pipeline.runner import run_job
from analysis_service.settings import AnalysisSettings
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests.builders import make_dataset
from tests.loopback import Loopback

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
KEY = "browser-" + "b" * 32
SHOTS = Path(os.environ.get("EXPLORER_SCREENSHOTS", "/tmp"))
PER_CLASS = 150  # more than one grid page (60) in the larger attributes


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


MISSING = _browser_missing()
if MISSING and os.environ.get("REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"REQUIRE_BROWSER=1 but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@dataclass
class Site:
    url: str
    images_job: str
    captions_job: str
    headers: dict[str, str]
    planted: tuple[str, str, str] | None = None  # the slice the predictions fail on

    def get(self, path: str, **params: object) -> dict:
        resp = httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()


def _captions_file(root: Path) -> None:
    """A captions file without images: two classes, captions that split by the ground."""
    lines = ["animals,img_name,caption"]
    for c, name in enumerate(("cat", "dog")):
        for i in range(30):
            ground = ("green grass", "white snow", "sandy beach")[(i + c) % 3]
            lines.append(f"{name},{name}_{i}.jpg,a {name} standing on {ground} in daylight")
    (root / "caps.csv").write_text("\n".join(lines) + "\n")


async def _run_jobs(settings: AnalysisSettings, url: str, root: Path) -> tuple[str, str]:
    """Both jobs submitted over HTTP and run to the end in process, with the real caption app."""
    caption_app = create_caption_app(CaptionSettings(data_roots=str(root), caption_workers=2))
    engine = make_engine(settings.database_url or "")
    ids = []
    async with caption_app.router.lifespan_context(caption_app), httpx.AsyncClient() as http:
        for body in ({"dataset_path": "pets", "seed": 0}, {"captions_path": "caps.csv"}):
            resp = await http.post(
                f"{url}/v1/jobs", json=body, headers={"Authorization": f"Bearer {KEY}"}
            )
            assert resp.status_code == 202, resp.text
            job = uuid.UUID(resp.json()["id"])
            transport = httpx.ASGITransport(app=caption_app)
            status = await run_job(
                job, settings, make_sessionmaker(engine), caption_transport=transport
            )
            assert status == "succeeded"
            ids.append(str(job))
    await engine.dispose()
    return ids[0], ids[1]


def _plant_predictions(site: Site) -> tuple[str, str, str]:
    """A model wrong on every cat of one attribute and right elsewhere; that slice comes first."""
    rows = site.get(f"/v1/jobs/{site.images_job}/assignments", limit=10000)["items"]
    cats = [r for r in rows if r["class"] == "cat" and r["attribute"] != "other"]
    dimension = cats[0]["dimension"]
    sizes: dict[str, int] = {}
    for r in cats:
        if r["dimension"] == dimension:
            sizes[r["attribute"]] = sizes.get(r["attribute"], 0) + 1
    attribute = max(sizes, key=lambda a: sizes[a])
    wrong = {r["image"] for r in cats if (r["dimension"], r["attribute"]) == (dimension, attribute)}
    classes = {r["image"]: r["class"] for r in rows}
    predictions = [
        {
            "image": image,
            "prediction": ("dog" if cls == "cat" else "cat") if image in wrong else cls,
        }
        for image, cls in classes.items()
    ]
    resp = httpx.post(
        f"{site.url}/v1/jobs/{site.images_job}/predictions",
        json={"predictions": predictions, "name": "planted"},
        headers=site.headers,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return "cat", dimension, attribute


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explorer-data")
    make_dataset(root / "pets", per_class=PER_CLASS)
    _captions_file(root)
    return root


@pytest.fixture(scope="module")
def database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with scratch_database(pg_admin_url, f"subpop_ui_{uuid.uuid4().hex[:12]}", template_db) as url:
        yield url


def _settings(database: str, data: Path, **options: str) -> AnalysisSettings:
    return AnalysisSettings(
        database_url=database, data_roots=str(data), caption_urls="http://127.0.0.1:9", **options
    )


@pytest.fixture(scope="module")
def keyed(database: str, data: Path) -> Iterator[Site]:
    """The service with a key configured; the jobs are submitted through it."""
    settings = _settings(database, data, analysis_api_keys=f"ui:{KEY}")
    with Loopback(create_analysis_app(settings)) as server:
        images, captions = asyncio.run(_run_jobs(settings, server.url, data))
        site = Site(server.url, images, captions, {"Authorization": f"Bearer {KEY}"})
        site.planted = _plant_predictions(site)
        yield site


@pytest.fixture(scope="module")
def site(keyed: Site, database: str, data: Path) -> Iterator[Site]:
    """The same database behind a service with no key: open to loopback clients."""
    with Loopback(create_analysis_app(_settings(database, data))) as server:
        yield Site(server.url, keyed.images_job, keyed.captions_job, {}, keyed.planted)


@pytest.fixture(scope="module")
def browser(keyed: Site) -> Iterator:
    """One Chromium for the module. Started after the jobs have run: Playwright's sync API
    keeps an event loop of its own running in this thread from here on."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


class Tab:
    """A page of its own browser context, with every console error and page error it saw."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1360, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def unexpected(self, *expected: str) -> list[str]:
        """The errors seen but those saying one of `expected`."""
        return [e for e in self.errors if not any(text in e for text in expected)]

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    opened = Tab(browser)
    yield opened
    opened.context.close()


# Whether every image of the grid that is in view has loaded (or which placeholder says why
# one did not): lazy images below the fold are left alone, as the browser leaves them.
THUMBNAILS = """(scope) => {
  const box = document.querySelector(scope);
  const failed = box.querySelector('.placeholder');
  if (failed) return 'placeholder: ' + failed.textContent;
  const shown = [...box.querySelectorAll('img')].filter((img) => {
    const r = img.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < innerHeight;
  });
  return shown.length > 0 && shown.every((img) => img.complete && img.naturalWidth > 0)
    ? 'loaded' : false;
}"""


def thumbnails_loaded(page, scope: str) -> None:
    outcome = page.wait_for_function(THUMBNAILS, arg=scope).json_value()
    assert outcome == "loaded", outcome


def fmt(n: int) -> str:
    return f"{n:,}"


def _biggest(site: Site, job: str) -> dict:
    structure = site.get(f"/v1/jobs/{job}/structure")
    attributes = [
        a | {"class": c["class"], "dimension": d["dimension"]}
        for c in structure["classes"]
        for d in c["dimensions"]
        for a in d["attributes"]
    ]
    return max(attributes, key=lambda a: (a["size"], -a["id"]))


def test_the_jobs_page_shows_every_job_and_submits_through_the_api(tab: Tab, site: Site):
    page = tab.page
    page.goto(f"{site.url}/ui")
    for job in (site.images_job, site.captions_job):
        page.locator(f'tr[data-job-id="{job}"] .badge.succeeded').wait_for()
    total = site.get("/v1/jobs")["total"]
    assert page.locator("#jobs-total").inner_text() == f"({total})"
    page.click("#submit-form button[type=submit]")  # no folder and no file: the API says so
    page.locator("#submit-result .error").wait_for()
    assert "give dataset_path, captions_path, or both" in page.inner_text("#submit-result")
    page.fill("input[name=dataset_path]", "pets")
    page.click("#submit-form summary")
    page.fill("input[name=seed]", "7")
    page.click("#submit-form button[type=submit]")
    page.locator("#submit-result a").wait_for()
    queued = page.get_attribute("#submit-result a", "href").rsplit("/", 1)[1]
    page.locator(f'tr[data-job-id="{queued}"] .badge.queued').wait_for()
    assert site.get(f"/v1/jobs/{queued}")["seed"] == 7
    page.screenshot(path=SHOTS / "explorer-jobs.png", full_page=True)
    page.click("#submit-result a")  # a job without results yet says when they come
    page.get_by_text("Discovered once the job has succeeded.").wait_for()
    assert page.inner_text("#job-status .badge") == "queued"
    assert tab.unexpected("status of 422") == []  # the browser reports the 422 asked for


def test_an_attribute_opens_its_grid_of_loaded_thumbnails_counted_as_the_api_counts(
    tab: Tab, site: Site
):
    page, job = tab.page, site.images_job
    page.goto(f"{site.url}/ui/jobs/{job}")
    structure = site.get(f"/v1/jobs/{job}/structure")
    page.locator("button.attr").first.wait_for()
    for c in structure["classes"]:
        for d in c["dimensions"]:
            for a in d["attributes"]:
                shown = page.inner_text(f'button[data-subpopulation="{a["id"]}"] .attr-size')
                assert shown == fmt(a["size"]), (c["class"], d["dimension"], a["attribute"])
    biggest = _biggest(site, job)
    assert biggest["size"] > 60, "the dataset should need a second page"
    page.click(f'button[data-subpopulation="{biggest["id"]}"]')
    page.wait_for_url(f"**/ui/jobs/{job}?subpopulation={biggest['id']}")
    page.locator("#grid figure.card").nth(59).wait_for()
    assert (
        site.get(f"/v1/subpopulations/{biggest['id']}/images", limit=1)["total"] == biggest["size"]
    )
    assert page.inner_text("#grid .count-line") == f"Showing 60 of {fmt(biggest['size'])}"
    thumbnails_loaded(page, "#grid")
    page.screenshot(path=SHOTS / "explorer-job-grid.png")

    page.locator("#grid .sentinel").scroll_into_view_if_needed()  # the next page, by scrolling
    expected = min(120, biggest["size"])
    cards = "(n) => document.querySelectorAll('#grid figure.card').length === n"
    page.wait_for_function(cards, arg=expected)  # a function: the page's CSP forbids eval
    ids = page.eval_on_selector_all("#grid figure.card", "cs => cs.map(c => c.dataset.imageId)")
    assert len(set(ids)) == expected

    page.locator("#grid figure.card").first.click()  # the caption, on click
    caption = site.get(f"/v1/subpopulations/{biggest['id']}/images", limit=1)["items"][0]
    assert page.inner_text("dialog.detail .caption") == caption["caption"]
    page.keyboard.press("Escape")

    page.go_back()
    page.wait_for_url(f"**/ui/jobs/{job}")
    page.get_by_text("Choose an attribute to see its images.").wait_for()
    assert page.locator("button.attr[aria-current]").count() == 0
    page.go_forward()
    page.locator("#grid figure.card").first.wait_for()
    assert tab.errors == []


def test_a_deep_link_opens_the_grid_at_once(tab: Tab, site: Site):
    page, job = tab.page, site.images_job
    biggest = _biggest(site, job)
    page.goto(f"{site.url}/ui/jobs/{job}?subpopulation={biggest['id']}")
    page.locator("#grid figure.card").first.wait_for()
    current = page.locator("button.attr[aria-current]")
    assert current.get_attribute("data-subpopulation") == str(biggest["id"])
    assert biggest["attribute"] in page.inner_text("#grid h2")
    thumbnails_loaded(page, "#grid")
    assert tab.errors == []


def test_the_slices_table_ranks_the_planted_slice_and_opens_its_predictions(tab: Tab, site: Site):
    page, job = tab.page, site.images_job
    assert site.planted is not None
    sets = site.get(f"/v1/jobs/{job}/predictions")
    report = site.get(f"/v1/jobs/{job}/slices", predictions=sets[0]["id"], limit=100)
    page.goto(f"{site.url}/ui/jobs/{job}?tab=slices")
    rows = page.locator("table.slices tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(report["items"])
    first = report["items"][0]
    assert first["conditions"][0]["attribute"] in rows.first.inner_text()
    class_, dimension, attribute = site.planted
    assert (first["class"], first["conditions"]) == (
        class_,
        [{"dimension": dimension, "attribute": attribute}],
    )
    rows.first.locator("button.slice").click()
    page.wait_for_url("**&attribute=*")
    page.locator("#slice-grid figure.card .prediction.wrong").first.wait_for()
    count = page.inner_text("#slice-grid .count-line")
    assert count == f"Showing {fmt(min(60, first['size']))} of {fmt(first['size'])}"
    thumbnails_loaded(page, "#slice-grid")
    page.set_viewport_size({"width": 1360, "height": 1300})  # the table and the grid's top
    page.evaluate("() => document.getElementById('tabs').scrollIntoView()")
    thumbnails_loaded(page, "#slice-grid")
    page.screenshot(path=SHOTS / "explorer-slices.png")
    page.go_back()
    page.wait_for_url(f"**/ui/jobs/{job}?tab=slices*")
    page.locator("#slice-grid").wait_for(state="hidden")
    assert tab.errors == []


def test_a_captions_job_shows_captions_instead_of_thumbnails(tab: Tab, site: Site):
    page, job = tab.page, site.captions_job
    biggest = _biggest(site, job)
    first = site.get(f"/v1/subpopulations/{biggest['id']}/images", limit=1)["items"][0]
    page.goto(f"{site.url}/ui/jobs/{job}?subpopulation={biggest['id']}")
    page.locator("#grid .thumb.text").first.wait_for()
    assert page.locator("#grid img").count() == 0
    assert page.inner_text("#grid .thumb.text >> nth=0") == first["caption"]
    assert page.inner_text("#grid figcaption >> nth=0") == first["path"]
    assert tab.errors == []


def test_an_unknown_job_or_subpopulation_is_a_page_saying_so(tab: Tab, site: Site):
    page = tab.page
    missing = uuid.uuid4()
    response = page.goto(f"{site.url}/ui/jobs/{missing}")
    assert response is not None and response.status == 404
    assert f"There is no job {missing}." in page.inner_text("main")
    response = page.goto(f"{site.url}/ui/jobs/{site.images_job}?subpopulation=99999999")
    assert response is not None and response.status == 404
    assert "has no subpopulation 99999999" in page.inner_text("main")
    page.click("text=See all jobs")
    page.locator("#jobs table").wait_for()
    # The browser reports each 404 document itself; nothing else may have gone wrong.
    assert tab.unexpected("status of 404") == []


def test_with_a_key_configured_one_signs_in_and_explores(tab: Tab, keyed: Site):
    page, job = tab.page, keyed.images_job
    page.goto(f"{keyed.url}/ui/jobs/{job}")
    page.wait_for_url("**/ui/login")
    page.fill("input[name=key]", KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{keyed.url}/ui")
    assert "Signed in as ui" in page.inner_text("header")
    page.click("#submit-form button[type=submit]")  # a cookie POST: the CSRF token goes along
    page.locator("#submit-result .error").wait_for()
    assert "give dataset_path, captions_path, or both" in page.inner_text("#submit-result")
    page.click(f'tr[data-job-id="{job}"] td.dataset a')
    biggest = _biggest(keyed, job)
    page.click(f'button[data-subpopulation="{biggest["id"]}"]')
    page.locator("#grid figure.card").first.wait_for()
    thumbnails_loaded(page, "#grid")
    page.wait_for_load_state("networkidle")  # thumbnails still on their way would get a 401
    page.click("header button:has-text('Sign out')")
    page.wait_for_url("**/ui/login")
    assert tab.unexpected("status of 422") == []


def test_an_image_changed_since_the_scan_shows_why_instead_of_a_thumbnail(
    tab: Tab, site: Site, data: Path
):
    page, job = tab.page, site.images_job
    biggest = _biggest(site, job)
    first = site.get(f"/v1/subpopulations/{biggest['id']}/images", limit=1)["items"][0]
    path = data / "pets" / first["path"]
    before, stat = path.read_bytes(), path.stat()
    path.write_bytes(before[: len(before) // 2])
    try:
        page.goto(f"{site.url}/ui/jobs/{job}?subpopulation={biggest['id']}")
        placeholder = page.locator(
            f'#grid figure[data-image-id="{first["image_id"]}"] .placeholder'
        )
        placeholder.wait_for()
        assert "Changed since the scan" in placeholder.inner_text()
        assert page.locator("#grid .placeholder").count() == 1
    finally:
        path.write_bytes(before)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert tab.unexpected("status of 410") == []
