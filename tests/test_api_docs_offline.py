"""The API reference pages of both services load nothing from another site: every script,
style sheet and icon they name is served by the service itself, without a key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from analysis_service.app import create_app as create_analysis_app
from analysis_service.settings import AnalysisSettings
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests.pipeline_helpers import api_client

KEY = "docs-key-0123456789abcdef0123"
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _Links(HTMLParser):
    """Every URL a page makes the browser fetch: src, href, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


def _links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.urls


@pytest.fixture(params=["analysis", "caption"])
async def service(request, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Each service, keyed as deployed: the pages and their assets need no key."""
    if request.param == "analysis":
        app = create_analysis_app(
            AnalysisSettings(
                database_url="postgresql://docs-only/x",
                data_roots=str(tmp_path),
                analysis_api_keys=SecretStr(f"docs:{KEY}"),
            )
        )
    else:
        app = create_caption_app(CaptionSettings(data_roots=str(tmp_path), caption_api_key=KEY))
    async with api_client(app) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_reference_page_names_only_local_assets_and_they_are_served(service, page: str):
    resp = await service.get(page)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "://" not in resp.text, "the page names another site"
    urls = _links(resp.text)
    assert len(urls) >= 2, resp.text  # a script and an icon at least
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await service.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        suffix = Path(url).suffix
        if suffix in CONTENT_TYPES:
            assert CONTENT_TYPES[suffix] in asset.headers["content-type"], url


async def test_swagger_ui_loads_its_script_and_style_and_the_schema(service):
    html = (await service.get("/docs")).text
    assert any(url.endswith("swagger-ui-bundle.js") for url in _links(html))
    assert any(url.endswith("swagger-ui.css") for url in _links(html))
    assert "url: '/openapi.json'" in html
    assert (await service.get("/openapi.json")).status_code == 200
    assert (await service.get("/docs/oauth2-redirect")).status_code == 200
