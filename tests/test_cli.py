"""The `subpop` command line against a real analysis API: uvicorn on loopback, a queue worker
running the jobs, the real caption app behind a gate that can hold captioning back."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analysis_service.app import create_app as create_analysis_app
from analysis_service.cli.main import app as cli
from analysis_service.database_admin import scratch_database
from analysis_service.settings import AnalysisSettings
from analysis_service.worker import serve
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests.builders import write_image
from tests.loopback import Loopback, free_port

KEY = "cli-" + "k" * 32
UNKNOWN = str(uuid.UUID(int=1))


class Gate:
    """Caption requests wait while the gate is closed: a job stays in its caption stage."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.open = threading.Event()
        self.open.set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/captions":
            await asyncio.to_thread(self.open.wait)
        await self.inner(scope, receive, send)


class Worker:
    """analysis_service.worker's serve loop in a thread with its own event loop."""

    def __init__(self, settings: AnalysisSettings, database_url: str):
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(settings, database_url))

    def _run(self, settings: AnalysisSettings, database_url: str) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(serve(settings, database_url))
        self.loop.call_soon(self.started.set)
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        self.loop.close()

    def __enter__(self) -> Worker:
        self.thread.start()
        self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(30)


def make_images(root: Path, salt: int, per_class: int = 6) -> Path:
    """Two classes split by the colour of their lower half; salt makes the bytes (so the
    content hashes, so the cached captions) this dataset's own."""
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            bottom = (30, 160, 40) if i % 2 else (30, 60, 200)
            write_image(
                root / name / f"{i:02d}.jpg",
                color=(150 + i * 10, 120 + c * 7, 60 + i * 20),
                bottom=bottom,
                size=(80, 60),
                marker=salt * 100 + c * 10 + i,
            )
    return root


class Env:
    def __init__(self, root: Path, api: str, keyed: str, gate: Gate):
        self.root, self.api, self.keyed, self.gate = root, api, keyed, gate

    def run(self, *args: str, api: str | None = None, env: dict[str, str] | None = None):
        """The CLI's result; stdout and stderr apart."""
        argv = [*args, "--api", api or self.api]
        return CliRunner().invoke(cli, argv, env=env or {}, catch_exceptions=False)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.api + path, timeout=10)


@pytest.fixture(scope="module")
def env(pg_admin_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli-data")
    gate = Gate(create_caption_app(CaptionSettings(data_roots=str(root), caption_workers=2)))
    name = f"subpop_cli_{uuid.uuid4().hex[:12]}"
    with scratch_database(pg_admin_url, name, template=template_db) as url, Loopback(gate) as cap:
        common: dict[str, Any] = {"database_url": url, "data_roots": str(root)}
        worker_settings = AnalysisSettings(
            **common,
            caption_urls=cap.url,
            caption_batch_size=4,
            caption_concurrency=1,
            worker_stalled_after_s=5,
        )
        keyed = AnalysisSettings(**common, analysis_api_keys=f"cli:{KEY}")
        with (
            Loopback(create_analysis_app(AnalysisSettings(**common))) as api,
            Loopback(create_analysis_app(keyed)) as keyed_api,
            Worker(worker_settings, url),
        ):
            yield Env(root, api.url, keyed_api.url, gate)


def _job_id(watched: str) -> str:
    """The job id of a watch's output, whose lines start `job <id>: <status>`."""
    return watched.split()[1].rstrip(":")


def _wait(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def done_job(env: Env) -> str:
    """A job that has succeeded, submitted and followed through the CLI."""
    make_images(env.root / "pets", salt=1)
    result = env.run("submit", "pets", "--seed", "0", "--watch", "--interval", "0.2")
    assert result.exit_code == 0, result.output
    return _job_id(result.stdout)


def test_submit_watch_follows_the_job_to_done_and_prints_its_tree(env: Env):
    make_images(env.root / "watched", salt=2)
    result = env.run("submit", "watched", "--watch", "--interval", "0.2")
    assert result.exit_code == 0, result.output
    job_id = _job_id(result.stdout)
    assert f"job {job_id}: succeeded" in result.stdout
    structure = env.get(f"/v1/jobs/{job_id}/structure").json()
    for cls in structure["classes"]:
        assert f"{cls['class']}  {cls['images']} images" in result.stdout
        for dim in cls["dimensions"]:
            assert dim["dimension"] in result.stdout
            for attr in dim["attributes"]:
                if attr["size"]:
                    assert f"{attr['share'] * 100:5.1f}%" in result.stdout


def test_on_a_terminal_submit_watch_draws_a_bar_per_stage(env: Env, done_job: str):
    make_images(env.root / "tty", salt=3)
    result = env.run("submit", "tty", "-w", "--interval", "0.2", env={"FORCE_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "\x1b[" in result.stdout  # colours and cursor moves: rich's live display
    for stage in ("scan", "caption", "discover", "summarize"):
        assert stage in result.stdout
    assert "12/12 images" in result.stdout


def test_json_output_is_the_api_answer(env: Env, done_job: str):
    jobs = env.run("jobs", "--json")
    assert jobs.exit_code == 0
    assert done_job in [job["id"] for job in json.loads(jobs.stdout)["items"]]
    tree = env.run("tree", done_job, "--json")
    assert json.loads(tree.stdout) == env.get(f"/v1/jobs/{done_job}/structure").json()
    status = env.run("status", done_job, "--json", env={"FORCE_COLOR": "1"})
    assert "\x1b[" not in status.stdout
    assert json.loads(status.stdout)["status"] == "succeeded"


def test_colours_follow_no_color(env: Env, done_job: str):
    coloured = env.run("tree", done_job, env={"FORCE_COLOR": "1"}).stdout
    plain = env.run("tree", done_job, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    assert "\x1b[32m" in coloured  # the share bars are green
    assert "\x1b[32m" not in plain and "\x1b[36m" not in plain
    assert "█" in plain


def test_the_jobs_table_and_status_show_the_job(env: Env, done_job: str):
    table = env.run("jobs", "--status", "succeeded")
    assert done_job in table.stdout and "succeeded" in table.stdout
    status = env.run("status", done_job)
    assert status.exit_code == 0
    assert "succeeded" in status.stdout and f"subpop tree {done_job}" in status.stdout


def test_an_unknown_job_is_exit_2_with_the_api_detail(env: Env):
    detail = env.get(f"/v1/jobs/{UNKNOWN}").json()["detail"]
    result = env.run("status", UNKNOWN)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: 404 not_found: {detail}"
    as_json = env.run("tree", UNKNOWN, "--json")
    assert as_json.exit_code == 2
    assert (
        json.loads(as_json.stderr)["detail"]
        == env.get(f"/v1/jobs/{UNKNOWN}/structure").json()["detail"]
    )


def test_an_id_cannot_reach_another_route(env: Env):
    result = env.run("status", "../../healthz")
    assert result.exit_code == 2
    assert "404" in result.stderr


def test_cancel_stops_a_running_job_and_its_watch_exits_1(env: Env):
    make_images(env.root / "held", salt=4)
    env.gate.open.clear()
    try:
        submitted = env.run("submit", "held", "--json")
        job_id = json.loads(submitted.stdout)["id"]
        _wait(lambda: env.get(f"/v1/jobs/{job_id}").json()["stage"] == "caption", "captioning")
        cancelled = env.run("cancel", job_id)
        assert cancelled.exit_code == 0
        assert f"job {job_id}: running: asked to stop at its next batch" in cancelled.stdout
    finally:
        env.gate.open.set()
    watched = env.run("status", job_id, "--watch", "--interval", "0.2")
    assert watched.exit_code == 1, watched.output
    assert "cancelled" in watched.stdout
    assert env.run("status", job_id).exit_code == 1


def test_a_failing_job_exits_1_with_its_error(env: Env):
    rows = "image,label,caption\ncat/a.jpg,cat,a cat on grass\ndog/b.jpg,dog,\n"
    (env.root / "broken.csv").write_text(rows)
    result = env.run("submit", "broken.csv", "--captions", "--watch", "--interval", "0.2")
    assert result.exit_code == 1, result.output
    job_id = _job_id(result.stdout)
    error = env.get(f"/v1/jobs/{job_id}").json()["error"]
    assert error and "no caption" in error
    assert "failed" in result.stdout and error in " ".join(result.stdout.split())
    retried = env.run("retry", job_id, "--json")
    assert retried.exit_code == 0
    assert json.loads(retried.stdout)["status"] == "queued"


def test_an_unreachable_api_is_one_line_and_exit_2():
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "analysis_service.cli", "jobs", "--api", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cannot reach the analysis API at {url}")


def test_a_bad_api_url_or_option_is_a_usage_error(env: Env):
    assert env.run("jobs", api="localhost:8000").exit_code == 2
    assert env.run("slices", UNKNOWN).exit_code == 2  # neither --predictions nor --set
    assert env.run("submit", "x", "--images", "y").exit_code == 2


def test_a_keyed_api_needs_the_key(env: Env):
    refused = env.run("jobs", api=env.keyed)
    assert refused.exit_code == 2
    detail = httpx.get(env.keyed + "/v1/jobs", timeout=10).json()["detail"]
    assert refused.stderr.strip() == f"error: 401 unauthorized: {detail}"
    assert env.run("jobs", "--key", KEY, api=env.keyed).exit_code == 0
    assert env.run("jobs", api=env.keyed, env={"SUBPOP_API_KEY": KEY}).exit_code == 0
    wrong = env.run("jobs", "--key", "x" * 40, api=env.keyed)
    assert wrong.exit_code == 2 and KEY not in wrong.output


def _predictions(env: Env, job_id: str, path: Path) -> int:
    """A model wrong on every cat whose lower half is green; the rows written."""
    rows = env.get(f"/v1/jobs/{job_id}/assignments?limit=1000").json()["items"]
    images = {(r["image"], r["class"]) for r in rows}
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "prediction"])
        for image, cls in sorted(images):
            green = int(Path(image).stem) % 2 == 1
            out.writerow([image, "dog" if cls == "cat" and green else cls])
    return len(images)


def test_slices_uploads_predictions_and_ranks_the_slices(env: Env, done_job: str, tmp_path):
    path = tmp_path / "model.csv"
    rows = _predictions(env, done_job, path)
    args = ("slices", done_job, "--predictions", str(path), "--name", "cli-model")
    result = env.run(*args, "--min-size", "2", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"{rows} rows, {rows} matched, accuracy 75.0%" in result.stdout
    sets = env.get(f"/v1/jobs/{done_job}/predictions").json()
    assert [s["name"] for s in sets] == ["cli-model"]
    again = env.run("slices", done_job, "--set", str(sets[0]["id"]), "--min-size", "2", "--json")
    report = json.loads(again.stdout)
    assert report["predictions"] == sets[0]["id"] and report["tested"] > 0
    top = report["items"][0]
    assert top["class"] == "cat" and top["error_rate"] > 0
    conditions = " & ".join(f"{c['dimension']}={c['attribute']}" for c in top["conditions"])
    assert f"{report['tested']} slices tested" in result.stdout
    assert f"1{'*' if top['significant'] else ''}  cat: {conditions}" in result.stdout


def test_export_streams_a_parquet_file_pyarrow_reads(env: Env, done_job: str, tmp_path):
    target = tmp_path / "structure.parquet"
    result = env.run("export", done_job, "--format", "parquet", "-o", str(target))
    assert result.exit_code == 0, result.output
    table = pq.read_table(target)
    assert table.num_rows == env.get(f"/v1/jobs/{done_job}").json()["valid"]
    assert {"file_name", "class", "caption"} <= set(table.column_names)
    assert f"wrote {target.stat().st_size} bytes to {target}" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["structure.parquet"]
    # On a terminal the bytes are counted on stderr; the file is the same kind of file.
    csv_file = tmp_path / "labels.csv"
    counted = env.run(
        "export", done_job, "-f", "csv", "-o", str(csv_file), env={"FORCE_COLOR": "1"}
    )
    assert counted.exit_code == 0 and "export csv" in counted.stderr
    assert csv_file.read_text().startswith("file_name,class,caption")


def test_an_export_refused_leaves_no_file(env: Env, tmp_path):
    target = tmp_path / "none.parquet"
    result = env.run("export", UNKNOWN, "-o", str(target))
    assert result.exit_code == 2 and "404" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_delete_removes_the_job(env: Env):
    make_images(env.root / "gone", salt=5, per_class=2)
    submitted = env.run("submit", "gone", "--watch", "--json", "--interval", "0.2")
    job_id = json.loads(submitted.stdout)["id"]
    assert env.run("delete", job_id).exit_code == 0
    assert env.get(f"/v1/jobs/{job_id}").status_code == 404
    assert env.run("delete", job_id).exit_code == 2


def test_the_client_loads_nothing_of_the_server():
    probe = (
        "import sys, analysis_service.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('analysis_service', 'shared', 'fastapi', 'sqlalchemy')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    loaded = json.loads(done.stdout.replace("'", '"'))
    assert [m for m in loaded if not m.startswith("analysis_service.cli")] == ["analysis_service"]
