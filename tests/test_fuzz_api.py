"""Schemathesis against both services' OpenAPI schemas, served by uvicorn on loopback.

Every operation gets generated valid and invalid requests (examples, coverage and fuzzing
phases, a fixed number of examples, derandomized so that CI runs the same requests every time),
and every built-in check runs on every answer: no 5xx, the status, content type, headers and
body as the schema declares them, valid data accepted, invalid data rejected, 405 with Allow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI

from analysis_service.app import create_app as create_analysis_app
from analysis_service.database_admin import scratch_database
from analysis_service.settings import AnalysisSettings
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests import loopback
from tests.builders import make_dataset

# Bounded and reproducible: fuzzing draws this many cases per operation (the coverage phase adds
# its own deterministic boundary cases), derandomized, with no example database between runs.
# What schemathesis counts as a schema-valid request accepted (its default).
ACCEPTED = ["2xx", "3xx", 401, 403, 404, 409, 429, "5xx"]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 0,
        "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
        "operations": [
            {
                # A schema-valid job can still name a file where a folder is needed, a folder
                # without class folders, or '~nosuchuser': 422 for what the file system holds,
                # which no schema can know. A 422 from the schema's own rules stays a failure:
                # see schema_valid_is_never_a_validation_error.
                "include-name": "POST /v1/jobs",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 422]}},
            },
        ],
    }
)
# Both services run keyed, as deployed: the schemas declare Bearer auth, and the checks that
# drop or spoil the header expect the 401 that only a keyed service gives.
API_KEY = "fuzz-" + "k" * 32
CAPTION_KEY = "caption-" + "c" * 32
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# A request that takes this long is a hang, reported as a failure instead of stalling CI.
REQUEST_TIMEOUT_S = 10.0


class Loopback(loopback.Loopback):
    """tests.loopback's server, able to say which schema it serves."""

    def serves(self, schema: Any) -> bool:
        """Whether this server's OpenAPI document is the one the cases are generated from."""
        served = httpx.get(f"{self.url}/openapi.json", timeout=REQUEST_TIMEOUT_S).json()
        return bool(served == schema.raw_schema)


def _schema(app: FastAPI) -> Any:
    return schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)


# The cases are generated at collection, from apps built only for their schema (routes and
# models do not depend on settings); each server below checks it serves the same document.
ANALYSIS_SCHEMA = _schema(
    create_analysis_app(AnalysisSettings(database_url="postgresql://schema-only/x", data_roots="/"))
)
# CAPTION_MAX_BATCH is published as the images' maxItems: a larger batch is invalid data.
CAPTION_MAX_BATCH = 8
CAPTION_SCHEMA = _schema(
    create_caption_app(CaptionSettings(data_roots="/", caption_max_batch=CAPTION_MAX_BATCH))
)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The only data root: one tiny dataset in it."""
    root = tmp_path_factory.mktemp("fuzz-data")
    make_dataset(root / "tiny", per_class=2)
    return root


@pytest.fixture(scope="module")
def analysis_server(pg_admin_url: str, template_db: str, fuzz_root: Path) -> Iterator[Loopback]:
    name = f"subpop_fuzz_{uuid.uuid4().hex[:12]}"
    with scratch_database(pg_admin_url, name, template=template_db) as url:
        settings = AnalysisSettings(
            database_url=url,
            data_roots=str(fuzz_root),
            caption_urls="http://127.0.0.1:9",
            analysis_api_keys=f"fuzz:{API_KEY}",
        )
        with Loopback(create_analysis_app(settings)) as server:
            assert server.serves(ANALYSIS_SCHEMA)
            yield server


@pytest.fixture(scope="module")
def caption_server(fuzz_root: Path) -> Iterator[Loopback]:
    settings = CaptionSettings(
        data_roots=str(fuzz_root),
        caption_workers=2,
        caption_max_batch=CAPTION_MAX_BATCH,
        caption_api_key=CAPTION_KEY,
    )
    with Loopback(create_caption_app(settings)) as server:
        assert server.serves(CAPTION_SCHEMA)
        yield server


def schema_valid_is_never_a_validation_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """What the schema allows, the API's request validation takes: the two say the same."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code == 422 and response.json().get("error") == "validation_error":
        raise AssertionError(f"schema-valid request failed validation: {response.text}")
    return None


def _inside(path: str, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


@ANALYSIS_SCHEMA.parametrize()
def test_analysis_api_answers_every_generated_request_as_declared(
    case: schemathesis.Case, analysis_server: Loopback, fuzz_root: Path
) -> None:
    response = case.call_and_validate(
        base_url=analysis_server.url,
        headers=AUTH,
        timeout=REQUEST_TIMEOUT_S,
        additional_checks=[schema_valid_is_never_a_validation_error],
    )
    if case.method == "POST" and case.path == "/v1/jobs" and response.status_code == 202:
        # A job is only ever created on a folder inside DATA_ROOTS.
        assert _inside(response.json()["dataset_path"], fuzz_root), response.json()


@CAPTION_SCHEMA.parametrize()
def test_caption_api_answers_every_generated_request_as_declared(
    case: schemathesis.Case, caption_server: Loopback
) -> None:
    case.call_and_validate(
        base_url=caption_server.url,
        headers={"Authorization": f"Bearer {CAPTION_KEY}"},
        timeout=REQUEST_TIMEOUT_S,
        additional_checks=[schema_valid_is_never_a_validation_error],
    )


def test_no_job_was_created_outside_the_data_root(analysis_server: Loopback, fuzz_root: Path):
    """Every job the fuzzing left behind, read back from the API, names a folder in the root;
    and the tiny dataset itself is accepted, so the root is a real one."""
    accepted = httpx.post(
        f"{analysis_server.url}/v1/jobs",
        json={"dataset_path": "tiny"},
        headers=AUTH,
        timeout=REQUEST_TIMEOUT_S,
    )
    assert accepted.status_code == 202, accepted.text
    jobs = httpx.get(
        f"{analysis_server.url}/v1/jobs",
        params={"limit": 1000},
        headers=AUTH,
        timeout=REQUEST_TIMEOUT_S,
    ).json()
    assert jobs["total"] >= 1
    assert all(_inside(job["dataset_path"], fuzz_root) for job in jobs["items"]), jobs
