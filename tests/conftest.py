"""Shared fixtures: a real Postgres (embedded unless TEST_DATABASE_URL), one fresh database per
test cloned from a migrated template, and apps wired to it."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from analysis_service.app import create_app as create_analysis_app
from analysis_service.database_admin import scratch_database
from analysis_service.db import libpq_url, make_engine, make_sessionmaker
from analysis_service.migrate import upgrade
from analysis_service.settings import AnalysisSettings
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests.fakes.fake_llm import FakeLLM
from tests.pipeline_helpers import api_client

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ssdllm-captions"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    from analysis_service.embedded_db import embedded_server

    state = tempfile.mkdtemp(prefix="subpop-test-")
    os.chmod(state, 0o755)
    server = embedded_server(Path(state))
    yield server.get_uri("postgres")
    # Stopped here, not at interpreter exit, when pytest's captured streams are gone.
    logging.getLogger("pgserver").disabled = True
    server.cleanup()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    name = f"subpop_template_{os.getpid()}"
    with scratch_database(pg_admin_url, name) as url:
        upgrade(url)
        yield name


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh database built by the migrations, dropped after the test."""
    name = f"subpop_test_{uuid.uuid4().hex[:12]}"
    with scratch_database(pg_admin_url, name, template=template_db) as url:
        yield url


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def analysis_settings(database_url: str, data_root: Path) -> AnalysisSettings:
    return AnalysisSettings(
        database_url=database_url,
        data_roots=str(data_root),
        caption_urls="http://caption.localhost",
        caption_retry_attempts=3,
        caption_retry_base_delay_s=0.01,
        caption_retry_max_delay_s=0.05,
        caption_batch_size=8,
        ingest_batch_size=16,
        assign_batch_size=16,
    )


@pytest.fixture
def caption_settings(data_root: Path) -> CaptionSettings:
    return CaptionSettings(data_roots=str(data_root), caption_workers=2, caption_max_batch=16)


@pytest.fixture
async def caption_app(caption_settings: CaptionSettings) -> AsyncIterator:
    app = create_caption_app(caption_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def caption_client(caption_app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=caption_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://caption.localhost"
    ) as client:
        yield client


@pytest.fixture
async def api(analysis_settings: AnalysisSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_analysis_app(analysis_settings)) as client:
        yield client


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """The test's database in plain SQL, autocommit (see tests/sql.py)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    """The fake LLM, an OpenAI-compatible server on loopback, for one test."""
    with FakeLLM() as server:
        yield server
