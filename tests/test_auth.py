"""Who may call the analysis API: keys from ANALYSIS_API_KEYS and the `keys` command, scopes,
explorer sessions with their cross-site checks, and the loopback rule of open mode."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr, ValidationError
from sqlalchemy import select, text

from analysis_service import api as api_server
from analysis_service import launcher
from analysis_service.app import create_app
from analysis_service.auth import cli, repository
from analysis_service.auth.dependencies import (
    CSRF_HEADER,
    SESSION_COOKIE,
    AuthGate,
    authorize,
)
from analysis_service.auth.exposure import open_mode_refusal
from analysis_service.auth.keys import (
    TOKEN_PREFIX,
    Scope,
    new_token,
    parse_env_keys,
    token_hash,
    token_hint,
)
from analysis_service.models import ApiKey, Job, UiSession
from analysis_service.settings import AnalysisSettings
from shared.loopback import is_loopback_host
from tests.builders import make_dataset

ADMIN = "admin-secret-0123456789abcdef"
BASE = "http://localhost"
# Routes anyone may call: health for orchestrators, the API docs, and the sign-in pair (which
# checks the form's key, or the session and its CSRF token, itself).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/ui/login",
    "/ui/logout",
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cookie_of(token: str) -> dict[str, str]:
    """The header a browser sends with the session cookie (the test client keeps no jar)."""
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


@pytest.fixture
def keyed_settings(analysis_settings: AnalysisSettings) -> AnalysisSettings:
    return analysis_settings.model_copy(update={"analysis_api_keys": SecretStr(f"admin:{ADMIN}")})


@asynccontextmanager
async def serving(
    settings: AnalysisSettings, client: tuple[str, int] = ("127.0.0.1", 50000)
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield http


@pytest.fixture
async def keyed_api(keyed_settings: AnalysisSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(keyed_settings) as http:
        yield http


async def store_key(sessionmaker, name: str, scope: Scope = Scope.WRITE) -> str:
    token = new_token()
    async with sessionmaker() as session, session.begin():
        await repository.add_key(session, name, scope, token_hash(token), token_hint(token))
    return token


async def run_cli(monkeypatch, database_url: str, *argv: str, env_keys: str = "") -> int:
    """`python -m analysis_service.auth keys ...`, in a thread: it runs its own event loop."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ANALYSIS_API_KEYS", env_keys)
    return await asyncio.to_thread(cli.main, ["keys", *argv])


async def sign_in(http: httpx.AsyncClient, key: str) -> tuple[str, str]:
    """The session cookie and CSRF token a browser gets by signing in with key."""
    resp = await http.post("/ui/login", data={"key": key})
    assert resp.status_code == 303 and resp.headers["location"] == "/ui"
    cookie = resp.cookies[SESSION_COOKIE]
    http.cookies.clear()
    page = await http.get("/ui", headers=cookie_of(cookie))
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return cookie, found[1]


async def submit(http: httpx.AsyncClient, data_root: Path, **kwargs) -> httpx.Response:
    make_dataset(data_root / "pets")
    return await http.post("/v1/jobs", json={"dataset_path": "pets"}, **kwargs)


def test_every_v1_and_ui_route_runs_the_auth_dependency(keyed_settings):
    app = create_app(keyed_settings)

    def calls(dependant) -> set:
        found = {dependant.call}
        for sub in dependant.dependencies:
            found |= calls(sub)
        return found

    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    guarded = [r for r in routes if r.path.startswith(("/v1", "/ui")) and r.path not in PUBLIC]
    assert len(guarded) >= 10 and any(r.path == "/ui" for r in guarded)
    unguarded = [r.path for r in guarded if authorize not in calls(r.dependant)]
    assert unguarded == []
    # Nothing outside /v1 and /ui but the public routes.
    assert {r.path for r in routes if not r.path.startswith(("/v1", "/ui"))} <= PUBLIC


async def test_without_a_key_the_api_answers_401_with_a_bearer_challenge(keyed_api):
    resp = await keyed_api.get("/v1/jobs")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="subpop analysis"'
    assert resp.json()["error"] == "unauthorized" and "Bearer" in resp.json()["detail"]
    assert (await keyed_api.post("/v1/jobs", json={"dataset_path": "x"})).status_code == 401
    assert (await keyed_api.get("/healthz")).status_code == 200
    assert (await keyed_api.get("/readyz")).status_code == 200


async def test_a_wrong_key_or_scheme_is_401(keyed_api):
    wrong = await keyed_api.get("/v1/jobs", headers=bearer(ADMIN + "x"))
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = await keyed_api.get("/v1/jobs", headers={"Authorization": f"Basic {ADMIN}"})
    assert basic.status_code == 401
    assert 'error="invalid_request"' in basic.headers["www-authenticate"]


async def test_an_env_key_works_and_the_job_records_its_name(keyed_api, data_root, sessionmaker):
    resp = await submit(keyed_api, data_root, headers=bearer(ADMIN))
    assert resp.status_code == 202
    job = (await keyed_api.get(resp.headers["location"], headers=bearer(ADMIN))).json()
    assert job["submitted_by"] == "admin"
    async with sessionmaker() as session:
        assert await session.scalar(select(Job.api_key_name)) == "admin"


async def test_a_read_only_key_reads_but_may_not_submit_cancel_or_retry(
    keyed_api, data_root, sessionmaker
):
    viewer = await store_key(sessionmaker, "viewer", Scope.READ)
    job_id = (await submit(keyed_api, data_root, headers=bearer(ADMIN))).json()["id"]
    assert (await keyed_api.get(f"/v1/jobs/{job_id}", headers=bearer(viewer))).status_code == 200
    refused = [
        await keyed_api.post("/v1/jobs", json={"dataset_path": "pets"}, headers=bearer(viewer)),
        await keyed_api.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(viewer)),
        await keyed_api.post(f"/v1/jobs/{job_id}/retry", headers=bearer(viewer)),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all("read-only" in r.json()["detail"] for r in refused)
    job = (await keyed_api.get(f"/v1/jobs/{job_id}", headers=bearer(ADMIN))).json()
    assert job["status"] == "queued" and not job["cancel_requested"]


async def test_a_key_created_with_the_command_works_and_is_stored_hashed(
    monkeypatch, capsys, database_url, keyed_api, data_root, sessionmaker
):
    assert await run_cli(monkeypatch, database_url, "create", "--name", "ci") == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    resp = await submit(keyed_api, data_root, headers=bearer(token))
    assert resp.status_code == 202
    async with sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM api_key"))).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert token not in stored and token[len(TOKEN_PREFIX) + 4 :] not in stored
    assert token_hash(token) in stored


async def test_a_key_created_with_a_daily_token_cap_lists_it(
    monkeypatch, capsys, database_url, sessionmaker
):
    created = await run_cli(
        monkeypatch, database_url, "create", "--name", "team", "--daily-tokens", "5000"
    )
    assert created == 0
    capsys.readouterr()
    async with sessionmaker() as session:
        assert await repository.daily_tokens_of(session, "team") == 5000
    assert await run_cli(monkeypatch, database_url, "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert "tokens/24h" in listed[0]
    assert [line.split()[3] for line in listed[1:] if line.startswith("team ")] == ["5000"]
    with pytest.raises(SystemExit):
        await run_cli(monkeypatch, database_url, "create", "--name", "x", "--daily-tokens", "0")


async def test_a_second_active_key_of_one_name_is_refused(monkeypatch, capsys, database_url):
    assert await run_cli(monkeypatch, database_url, "create", "--name", "ci") == 0
    assert await run_cli(monkeypatch, database_url, "create", "--name", "ci") == 1
    assert "exists" in capsys.readouterr().err
    assert await run_cli(monkeypatch, database_url, "create", "--name", "bad name!") == 1


async def test_list_shows_names_and_scopes_never_keys(monkeypatch, capsys, database_url):
    assert await run_cli(monkeypatch, database_url, "create", "--name", "ci") == 0
    assert (
        await run_cli(monkeypatch, database_url, "create", "--name", "viewer", "--read-only") == 0
    )
    tokens = capsys.readouterr().out.split()
    assert await run_cli(monkeypatch, database_url, "list", env_keys=f"ops:{ADMIN}") == 0
    listing = capsys.readouterr().out
    assert re.search(r"^ci\s+write\s", listing, re.M)
    assert re.search(r"^viewer\s+read\s", listing, re.M)
    assert re.search(r"^ops\s+write\s.*ANALYSIS_API_KEYS", listing, re.M)
    assert ADMIN not in listing
    assert all(token not in listing for token in tokens)


async def test_a_revoked_key_stops_working_and_its_sessions_end(
    monkeypatch, capsys, database_url, keyed_api, sessionmaker
):
    token = await store_key(sessionmaker, "ci")
    cookie, _ = await sign_in(keyed_api, token)
    assert (await keyed_api.get("/v1/jobs", headers=bearer(token))).status_code == 200
    assert (await keyed_api.get("/v1/jobs", headers=cookie_of(cookie))).status_code == 200
    assert await run_cli(monkeypatch, database_url, "revoke", "ci") == 0
    assert (await keyed_api.get("/v1/jobs", headers=bearer(token))).status_code == 401
    assert (await keyed_api.get("/v1/jobs", headers=cookie_of(cookie))).status_code == 401
    async with sessionmaker() as session:
        assert await session.scalar(select(UiSession.token_hash)) is None
        assert (await session.scalar(select(ApiKey.revoked_at))) is not None
    assert await run_cli(monkeypatch, database_url, "revoke", "ci") == 1


async def test_sign_in_gives_a_strict_http_only_cookie_that_reads_v1(keyed_api):
    form = await keyed_api.get("/ui/login")
    assert form.status_code == 200 and '<form method="post" action="/ui/login">' in form.text
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    resp = await keyed_api.post("/ui/login", data={"key": ADMIN})
    assert resp.status_code == 303
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain http here; https gets Secure
    token = resp.cookies[SESSION_COOKIE]
    assert (await keyed_api.get("/v1/jobs", headers=cookie_of(token))).status_code == 200
    page = await keyed_api.get("/ui", headers=cookie_of(token))
    assert "Signed in as <strong>admin</strong>" in page.text


async def test_sign_in_over_https_sets_a_secure_cookie(keyed_settings):
    app = create_app(keyed_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as http:
            resp = await http.post("/ui/login", data={"key": ADMIN})
    assert "secure" in {p.strip().lower() for p in resp.headers["set-cookie"].split(";")}


async def test_a_wrong_key_at_sign_in_gets_the_form_again_and_no_cookie(keyed_api):
    resp = await keyed_api.post("/ui/login", data={"key": "not-a-key-at-all-000"})
    assert resp.status_code == 401 and "Unknown or revoked" in resp.text
    assert "set-cookie" not in resp.headers
    empty = await keyed_api.post("/ui/login", data={})
    assert empty.status_code == 422


async def test_a_page_without_a_session_sends_the_browser_to_sign_in(keyed_api):
    resp = await keyed_api.get("/ui")
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/login"


async def test_a_cookie_post_needs_the_csrf_token(keyed_api, data_root):
    cookie, csrf = await sign_in(keyed_api, ADMIN)
    jar = cookie_of(cookie)
    without = await submit(keyed_api, data_root, headers=jar)
    assert without.status_code == 403 and "CSRF" in without.json()["detail"]
    wrong = await submit(keyed_api, data_root, headers={**jar, CSRF_HEADER: "0" * 64})
    assert wrong.status_code == 403
    with_token = await submit(keyed_api, data_root, headers={**jar, CSRF_HEADER: csrf})
    assert with_token.status_code == 202
    assert with_token.json()["status"] == "queued"


async def test_a_cross_site_request_is_refused_even_with_the_token(keyed_api, data_root):
    cookie, csrf = await sign_in(keyed_api, ADMIN)
    jar = cookie_of(cookie)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        resp = await submit(keyed_api, data_root, headers={**jar, CSRF_HEADER: csrf, **headers})
        assert resp.status_code == 403, headers
        assert "cross-site" in resp.json()["detail"]
    same = {CSRF_HEADER: csrf, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert (await submit(keyed_api, data_root, headers={**jar, **same})).status_code == 202


async def test_a_bearer_request_needs_no_csrf_token(keyed_api, data_root):
    resp = await submit(keyed_api, data_root, headers=bearer(ADMIN))
    assert resp.status_code == 202


async def test_sign_out_ends_the_session(keyed_api, sessionmaker):
    cookie, csrf = await sign_in(keyed_api, ADMIN)
    jar = cookie_of(cookie)
    refused = await keyed_api.post("/ui/logout", headers=jar, data={})
    assert refused.status_code == 403
    resp = await keyed_api.post("/ui/logout", headers=jar, data={"csrf_token": csrf})
    assert resp.status_code == 303 and resp.headers["location"] == "/ui/login"
    assert f'{SESSION_COOKIE}=""' in resp.headers["set-cookie"]
    assert "max-age=0" in resp.headers["set-cookie"].lower()
    assert (await keyed_api.get("/v1/jobs", headers=jar)).status_code == 401
    async with sessionmaker() as session:
        assert await session.scalar(select(UiSession.token_hash)) is None


async def test_a_read_only_session_may_sign_out_but_not_write(keyed_api, sessionmaker, data_root):
    viewer = await store_key(sessionmaker, "viewer", Scope.READ)
    cookie, csrf = await sign_in(keyed_api, viewer)
    jar = cookie_of(cookie)
    assert (
        await submit(keyed_api, data_root, headers={**jar, CSRF_HEADER: csrf})
    ).status_code == 403
    resp = await keyed_api.post("/ui/logout", headers=jar, data={"csrf_token": csrf})
    assert resp.status_code == 303


async def test_open_mode_serves_loopback_clients_without_a_key(api, data_root):
    resp = await submit(api, data_root)
    assert resp.status_code == 202
    job = (await api.get(resp.headers["location"])).json()
    assert job["submitted_by"] is None
    page = await api.get("/ui")
    assert page.status_code == 200 and "No API key is configured" in page.text


async def test_open_mode_refuses_clients_not_on_loopback(analysis_settings):
    async with serving(analysis_settings, client=("192.0.2.7", 40000)) as http:
        resp = await http.get("/v1/jobs")
    assert resp.status_code == 403 and "ANALYSIS_API_KEYS" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost:8000", True),
        ("LOCALHOST.", True),
        ("explorer.localhost:8000", True),
        ("127.0.0.1:8000", True),
        ("127.1.2.3", True),
        ("[::1]:8000", True),
        ("attacker.example:8000", False),  # a page that pointed its own name at 127.0.0.1
        ("localhost.attacker.example", False),
        ("192.0.2.7", False),
    ],
)
async def test_open_mode_answers_requests_addressed_to_a_loopback_name_only(api, host, allowed):
    """DNS rebinding: a web page rebinds its name to 127.0.0.1, so its requests come from
    loopback and are same-origin to the browser; only the Host header tells them apart."""
    resp = await api.get("/v1/jobs", headers={"Host": host})
    assert (resp.status_code == 200) is allowed, resp.text
    if not allowed:
        assert resp.status_code == 403 and "addressed to localhost" in resp.json()["detail"]


async def test_with_keys_any_host_name_may_be_used(keyed_api):
    resp = await keyed_api.get("/v1/jobs", headers={"Host": "subpop.example", **bearer(ADMIN)})
    assert resp.status_code == 200


async def test_open_mode_refuses_cross_site_writes(api, data_root):
    resp = await submit(api, data_root, headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status_code == 403


async def test_a_wrong_key_is_refused_in_open_mode_too(api):
    assert (await api.get("/v1/jobs", headers=bearer("nobody-knows-this-key"))).status_code == 401


async def test_a_stored_key_closes_open_mode_once_the_short_memory_expires(
    analysis_settings, sessionmaker
):
    now = [0.0]
    gate = AuthGate([], cache_s=5.0, clock=lambda: now[0])
    app = create_app(analysis_settings)
    app.state.auth = gate
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            assert (await http.get("/v1/jobs")).status_code == 200
            token = await store_key(sessionmaker, "ci")
            # The key works at once; requests without one are refused once the memory of
            # "no stored keys" expires.
            assert (await http.get("/v1/jobs", headers=bearer(token))).status_code == 200
            now[0] = 5.0
            assert (await http.get("/v1/jobs")).status_code == 401


def test_env_keys_are_parsed_named_and_checked():
    keys = parse_env_keys(f"ci:{ADMIN}, {ADMIN}x ,")
    assert keys[0].name == "ci" and keys[1].name.startswith("env-")
    assert keys[1].name == parse_env_keys(f"{ADMIN}x")[0].name  # stable, not positional
    with pytest.raises(ValueError, match="shorter"):
        parse_env_keys("ci:short")
    with pytest.raises(ValueError, match="twice"):
        parse_env_keys(f"ci:{ADMIN},ci:{ADMIN}y")
    with pytest.raises(ValidationError) as raised:
        AnalysisSettings(analysis_api_keys="ci:tooshort")
    assert "tooshort" not in str(raised.value)


def test_loopback_hosts():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("::")
    assert not is_loopback_host("") and not is_loopback_host("192.0.2.7")


async def test_open_mode_refusal_needs_a_network_host_and_no_key(database_url, sessionmaker):
    settings = AnalysisSettings(database_url=database_url)
    problem = await asyncio.to_thread(open_mode_refusal, settings, "0.0.0.0", database_url)
    assert problem and "ANALYSIS_API_KEYS" in problem and "HOST=127.0.0.1" in problem
    assert await asyncio.to_thread(open_mode_refusal, settings, "127.0.0.1", database_url) is None
    keyed = AnalysisSettings(database_url=database_url, analysis_api_keys=f"ci:{ADMIN}")
    assert await asyncio.to_thread(open_mode_refusal, keyed, "0.0.0.0", database_url) is None
    await store_key(sessionmaker, "ci")
    assert await asyncio.to_thread(open_mode_refusal, settings, "0.0.0.0", database_url) is None


def test_the_api_refuses_to_listen_on_a_network_interface_without_a_key(
    monkeypatch, caplog, database_url
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.delenv("ANALYSIS_API_KEYS", raising=False)
    monkeypatch.setattr(api_server.uvicorn, "run", pytest.fail)  # it must not get that far
    monkeypatch.setattr(api_server, "configure_logging", lambda *a, **k: None)  # keep caplog
    with caplog.at_level(logging.ERROR):
        assert api_server.main() == 2
    assert "refusing to listen on '0.0.0.0' with no API key" in caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "with no API key"),
        ({"ANALYSIS_API_KEYS": f"ci:{ADMIN}"}, "with no CAPTION_API_KEY"),
    ],
)
def test_make_serve_refuses_a_network_interface_without_keys(
    monkeypatch, caplog, database_url, env, expected
):
    for name in ("ANALYSIS_API_KEYS", "CAPTION_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "DATABASE_URL": database_url,
        "HOST": "0.0.0.0",
        "ANALYSIS_PORT": str(_free_port()),
        "CAPTION_PORT": str(_free_port()),
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(launcher, "_start", pytest.fail)  # nothing may be started
    monkeypatch.setattr(launcher, "configure_logging", lambda *a, **k: None)  # keep caplog
    with caplog.at_level(logging.ERROR):
        assert launcher.main() == 2
    assert expected in caplog.text


def test_open_mode_refusal_fails_closed_when_the_stored_keys_cannot_be_read():
    unreachable = "postgresql://nobody:x@127.0.0.1:1/nodb"
    problem = open_mode_refusal(AnalysisSettings(database_url=unreachable), "0.0.0.0", unreachable)
    assert problem and "could not be read" in problem


async def test_a_malformed_body_is_refused_for_its_caller_first(keyed_api, sessionmaker):
    """The body is parsed before the route's dependencies: without the check in the error
    handler, a caller with no key would learn what is wrong with its body instead of 401."""
    viewer = await store_key(sessionmaker, "viewer", Scope.READ)
    malformed = {"content": b"nope", "headers": {"content-type": "application/json"}}
    no_key = await keyed_api.post("/v1/jobs", **malformed)
    assert no_key.status_code == 401 and "www-authenticate" in no_key.headers
    not_utf8 = await keyed_api.post(
        "/v1/jobs", content=b"\xff\xfe", headers={"content-type": "application/json"}
    )
    assert not_utf8.status_code == 401
    read_only = await keyed_api.post(
        "/v1/jobs", content=b"nope", headers={**malformed["headers"], **bearer(viewer)}
    )
    assert read_only.status_code == 403
    writer = await keyed_api.post(
        "/v1/jobs", content=b"nope", headers={**malformed["headers"], **bearer(ADMIN)}
    )
    assert writer.status_code == 422 and writer.json()["error"] == "validation_error"
