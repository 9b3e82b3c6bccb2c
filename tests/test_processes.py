"""Real processes: `make serve`'s launcher, and workers killed with SIGKILL mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import uvicorn

from analysis_service.app import create_app as create_analysis_app
from analysis_service.settings import AnalysisSettings
from caption_service.app import create_app as create_caption_app
from caption_service.settings import CaptionSettings
from tests.builders import make_dataset
from tests.pipeline_helpers import api_client

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class SlowCaptionServer:
    """The real caption app on a real port, slowed down so a job is long enough to kill.
    While `gate` is clear, caption requests wait: a test holds a job in its caption stage
    until the workers it needs are in place, whatever the machine's speed."""

    def __init__(self, data_root: Path, delay_s: float = 0.15):
        self.images = 0
        self.gate = threading.Event()
        self.gate.set()
        inner = create_caption_app(CaptionSettings(data_roots=str(data_root), caption_workers=2))

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http" and scope["path"] == "/v1/captions":
                await asyncio.to_thread(self.gate.wait)
                await asyncio.sleep(delay_s)
            await inner(scope, receive, send)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> SlowCaptionServer:
        self.thread.start()
        wait_until(lambda: ready(self.url + "/readyz"), 20, "caption server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.should_exit = True
        self.thread.join(10)


def captioned_images() -> float:
    """Images the in-process caption app has captioned so far (its Prometheus counter)."""
    from caption_service.metrics import IMAGES

    return IMAGES.labels("pixel", "ok")._value.get()


def spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `python -m module`; the child keeps its own handle on the log file."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return spawn("analysis_service.worker", env, log)


def job_row(database_url: str, job_id: str) -> tuple:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT status, progress, attempts, valid, error FROM job WHERE id = %s", (job_id,)
        ).fetchone()


def submit(database_url: str, dataset: Path) -> str:
    """Submit through the real API app, in-process, against the same database."""
    settings = AnalysisSettings(database_url=database_url, data_roots=str(dataset.parent))

    async def post() -> str:
        async with api_client(create_analysis_app(settings)) as api:
            resp = await api.post("/v1/jobs", json={"dataset_path": str(dataset)})
            assert resp.status_code == 202, resp.text
            return resp.json()["id"]

    return asyncio.run(post())


@pytest.fixture
def worker_env(database_url: str, data_root: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DATA_ROOTS=str(data_root),
        # Short, so a killed worker is seen dead within seconds; not so short that a live
        # worker starved of CPU on a busy machine misses it (heartbeats every third of it).
        WORKER_STALLED_AFTER_S="6",
        CAPTION_BATCH_SIZE="4",
        CAPTION_CONCURRENCY="1",
        INGEST_BATCH_SIZE="32",
        LOG_LEVEL="INFO",
    )
    yield env


def test_killed_worker_job_is_finished_by_new_workers_without_redoing_work(
    worker_env, database_url, data_root, tmp_path
):
    dataset = make_dataset(data_root / "pets", per_class=40)
    captioned_before = captioned_images()
    with SlowCaptionServer(data_root) as captions:
        worker_env["CAPTION_URLS"] = captions.url
        job_id = submit(database_url, dataset)
        first = start_worker(worker_env, tmp_path / "w1.log")
        try:
            wait_until(
                lambda: (
                    (job_row(database_url, job_id)[1].get("caption") or {}).get("done", 0) >= 12
                ),
                60,
                "captioning to start",
            )
            # It scanned in processes of its own (a fork server, scanning processes).
            started = psutil.Process(first.pid).children(recursive=True)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert started
        wait_until(lambda: not any(map(_alive, started)), 20, "its processes to end with it")
        status, progress, *_ = job_row(database_url, job_id)
        assert status == "running"
        done_before_kill = progress["caption"]["done"]
        assert done_before_kill < 80

        # Two new workers race for the orphaned job: exactly one may run it.
        others = [start_worker(worker_env, tmp_path / f"w{i}.log") for i in (2, 3)]
        try:
            wait_until(
                lambda: job_row(database_url, job_id)[0] == "succeeded", 120, "job to finish"
            )
        finally:
            for proc in others:
                proc.send_signal(signal.SIGTERM)
            for proc in others:
                proc.wait(20)
    status, progress, attempts, valid, error = job_row(database_url, job_id)
    assert (status, valid, error) == ("succeeded", 80, None)
    assert attempts == 2
    with psycopg.connect(database_url) as conn:
        captions_stored = conn.execute("SELECT count(*) FROM caption").fetchone()[0]
        dims = conn.execute("SELECT count(*) FROM dimension").fetchone()[0]
        per_class_dims = conn.execute(
            "SELECT sum(jc.images * (SELECT count(*) FROM dimension d "
            "  WHERE d.job_id = jc.job_id AND d.class_name = jc.class_name)) FROM job_class jc"
        ).fetchone()[0]
        assignments = conn.execute("SELECT count(*) FROM assignment").fetchone()[0]
    assert captions_stored == 80
    assert dims >= 2 and assignments == per_class_dims
    # Nothing stored was captioned again: at most the one batch in flight at the kill is redone.
    assert progress["caption"]["done"] == 80
    assert captioned_images() - captioned_before <= 80 + 4


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def launcher_env(data_root: Path, tmp_path: Path) -> tuple[dict[str, str], int, int]:
    """`make serve`'s environment on free ports with an embedded Postgres under tmp_path."""
    analysis_port, caption_port = free_port(), free_port()
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        ANALYSIS_PORT=str(analysis_port),
        CAPTION_PORT=str(caption_port),
        STATE_DIR=str(tmp_path / "state"),
        DATA_ROOTS=str(data_root),
    )
    return env, analysis_port, caption_port


def test_launcher_serves_on_custom_ports_with_embedded_postgres_and_stops_cleanly(
    data_root, tmp_path
):
    dataset = make_dataset(data_root / "pets", per_class=5)
    env, analysis_port, caption_port = launcher_env(data_root, tmp_path)
    log = tmp_path / "serve.log"
    launcher = spawn("analysis_service.launcher", env, log)
    base = f"http://127.0.0.1:{analysis_port}"
    try:
        wait_until(lambda: ready(base + "/readyz"), 90, "analysis API")
        wait_until(lambda: ready(f"http://127.0.0.1:{caption_port}/readyz"), 90, "captions")
        resp = httpx.post(base + "/v1/jobs", json={"dataset_path": "pets"})
        assert resp.status_code == 202, resp.text
        job_url = base + resp.headers["location"]
        job = wait_until(
            lambda: (j := httpx.get(job_url).json())["status"] in ("succeeded", "failed") and j,
            90,
            "job",
        )
        assert job["status"] == "succeeded", job
        assert (tmp_path / "state" / "pg" / "PG_VERSION").exists()
    finally:
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert not ready(base + "/healthz")
    assert not ready(f"http://127.0.0.1:{caption_port}/healthz")
    # The embedded Postgres started by the launcher was stopped with it.
    assert not (tmp_path / "state" / "pg" / "postmaster.pid").exists()
    assert dataset.exists()


def test_launcher_refuses_a_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(
            os.environ,
            ANALYSIS_PORT=str(port),
            CAPTION_PORT=str(free_port()),
            STATE_DIR=str(tmp_path / "state"),
        )
        log = tmp_path / "serve.log"
        code = spawn("analysis_service.launcher", env, log).wait(60)
    assert code == 2
    assert f"port {port} is already in use; set ANALYSIS_PORT" in log.read_text()
    assert not (tmp_path / "state").exists()  # nothing was started


def test_a_stopped_worker_hands_its_job_back_to_the_queue(
    worker_env, database_url, data_root, tmp_path
):
    dataset = make_dataset(data_root / "pets", per_class=60)
    # 30 batches of 4 at 0.3 s: longer than the worker's 5 s grace period after SIGTERM.
    with SlowCaptionServer(data_root, delay_s=0.3) as captions:
        worker_env["CAPTION_URLS"] = captions.url
        job_id = submit(database_url, dataset)
        first = start_worker(worker_env, tmp_path / "w1.log")
        wait_until(
            lambda: (job_row(database_url, job_id)[1].get("caption") or {}).get("done", 0) >= 8,
            60,
            "captioning to start",
        )
        first.send_signal(signal.SIGTERM)  # what Ctrl-C on `make serve` sends it
        assert first.wait(30) == 0
        assert job_row(database_url, job_id)[0] == "queued"
        second = start_worker(worker_env, tmp_path / "w2.log")
        try:
            # Picked up at once: no stalled-worker timeout to wait for.
            wait_until(lambda: job_row(database_url, job_id)[0] == "succeeded", 60, "job")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    with psycopg.connect(database_url) as conn:
        kinds = [
            r[0]
            for r in conn.execute(
                "SELECT kind FROM job_event WHERE job_id = %s ORDER BY id", (job_id,)
            )
        ]
    assert kinds == ["started", "interrupted", "started", "succeeded"]


def test_services_do_not_outlive_a_launcher_killed_outright(data_root, tmp_path):
    """kill -9 on `make serve`: its children go with it, and the next start on the same
    STATE_DIR finds its ports free and the embedded Postgres usable."""
    env, analysis_port, caption_port = launcher_env(data_root, tmp_path)
    base = f"http://127.0.0.1:{analysis_port}"
    first = spawn("analysis_service.launcher", env, tmp_path / "first.log")
    try:
        wait_until(lambda: ready(base + "/readyz"), 90, "analysis API")
        first.kill()
        first.wait(10)
        wait_until(
            lambda: (
                not ready(base + "/healthz")
                and not ready(f"http://127.0.0.1:{caption_port}/healthz")
            ),
            30,
            "the services to stop with their launcher",
        )
    finally:
        if first.poll() is None:
            first.kill()
    second = spawn("analysis_service.launcher", env, tmp_path / "second.log")
    try:
        wait_until(lambda: ready(base + "/readyz"), 90, "the analysis API, started again")
    finally:
        second.send_signal(signal.SIGINT)
        code = second.wait(60)
    assert code == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert not (tmp_path / "state" / "pg" / "postmaster.pid").exists()


def shard_rows(database_url: str, job_id: str, stage: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT index, state, runs, finished_by, finished_at FROM job_shard "
            "WHERE job_id = %s AND stage = %s ORDER BY index",
            (job_id, stage),
        ).fetchall()


def shard_workers(database_url: str) -> int:
    """How many workers are running queued tasks at this moment."""
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE status = 'doing'"
        ).fetchone()
    return found[0] if found else 0


def caption_done(database_url: str, job_id: str) -> int:
    return (job_row(database_url, job_id)[1].get("caption") or {}).get("done", 0)


def test_two_workers_share_a_job_and_one_killed_outright_loses_no_finished_shard(
    worker_env, database_url, data_root, tmp_path
):
    """The worker running the job is killed with SIGKILL while both workers caption its
    shards: the other takes up the shards it held and, once it is seen dead, the job too."""
    dataset = make_dataset(data_root / "pets", per_class=120)
    worker_env.update(SHARD_SIZE="20", WORKER_CONCURRENCY="2")
    captioned_before = captioned_images()
    with SlowCaptionServer(data_root, delay_s=0.2) as captions:
        worker_env["CAPTION_URLS"] = captions.url
        job_id = submit(database_url, dataset)
        captions.gate.clear()
        first = start_worker(worker_env, tmp_path / "w1.log")
        second = None
        try:
            try:
                # The first worker runs the job; the second comes for its shards. Captioning
                # waits until both hold some, so the first cannot finish them all meanwhile.
                wait_until(lambda: job_row(database_url, job_id)[0] == "running", 60, "the job")
                second = start_worker(worker_env, tmp_path / "w2.log")
                wait_until(lambda: shard_workers(database_url) == 2, 90, "both workers' shards")
                captions.gate.set()
                wait_until(
                    lambda: (
                        len({r[3] for r in shard_rows(database_url, job_id, "caption") if r[3]})
                        == 2
                    ),
                    90,
                    "both workers to finish caption shards",
                )
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait()
            done_before = {
                r[0]: r for r in shard_rows(database_url, job_id, "caption") if r[1] == "done"
            }
            assert caption_done(database_url, job_id) < 240
            try:
                wait_until(
                    lambda: job_row(database_url, job_id)[0] == "succeeded", 120, "job to finish"
                )
            finally:
                assert second is not None
                second.send_signal(signal.SIGTERM)
                second.wait(20)
        finally:  # a wait that timed out left a worker running: it goes with the test
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
    status, progress, attempts, valid, error = job_row(database_url, job_id)
    assert (status, valid, error, attempts) == ("succeeded", 240, None, 2)
    caption_shards = shard_rows(database_url, job_id, "caption")
    assert len(caption_shards) == 12 and all(r[1] == "done" for r in caption_shards)
    # Finished shards were not run again; the second worker finished the rest.
    for index, row in done_before.items():
        assert caption_shards[index] == row and row[2] == 1
    runners = {r[3] for r in caption_shards}
    assert len(runners) == 2 and {r[3] for r in caption_shards if r[0] not in done_before} == {
        f"{socket.gethostname()}:{second.pid}"
    }
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM caption").fetchone()[0] == 240
        assert conn.execute("SELECT count(*) FROM job_image").fetchone()[0] == 240
        per_class_dims = conn.execute(
            "SELECT sum(jc.images * (SELECT count(*) FROM dimension d "
            "  WHERE d.job_id = jc.job_id AND d.class_name = jc.class_name)) FROM job_class jc"
        ).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM assignment").fetchone()[0] == per_class_dims
    assert progress["caption"]["done"] == progress["caption"]["total"] == 240
    assert progress["scan"]["done"] == 240
    # At most the batches in flight in the killed worker (two runners, one batch each) again.
    assert captioned_images() - captioned_before <= 240 + 2 * 4


ADVISORY_LOCKS = """
    SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


def test_cancel_stops_every_shard_on_every_worker(worker_env, database_url, data_root, tmp_path):
    dataset = make_dataset(data_root / "pets", per_class=120)
    worker_env.update(SHARD_SIZE="20", WORKER_CONCURRENCY="2")
    with SlowCaptionServer(data_root, delay_s=0.2) as captions:
        worker_env["CAPTION_URLS"] = captions.url
        job_id = submit(database_url, dataset)
        workers = [start_worker(worker_env, tmp_path / f"w{i}.log") for i in (1, 2)]
        try:
            wait_until(lambda: caption_done(database_url, job_id) >= 40, 90, "captioning")
            # Captioning waits from here until the cancel is in: shards are left to stop.
            captions.gate.clear()
            settings = AnalysisSettings(database_url=database_url, data_roots=str(data_root))

            async def cancel() -> int:
                async with api_client(create_analysis_app(settings)) as api:
                    return (await api.post(f"/v1/jobs/{job_id}/cancel")).status_code

            assert asyncio.run(cancel()) == 200
            captions.gate.set()
            wait_until(lambda: job_row(database_url, job_id)[0] == "cancelled", 30, "cancel")
            # Every runner lets go of its shard at its next batch: no advisory lock is left.
            with psycopg.connect(database_url, autocommit=True) as conn:
                wait_until(
                    lambda: conn.execute(ADVISORY_LOCKS).fetchone()[0] == 0,
                    10,
                    "every shard to stop",
                )
            stopped_at = caption_done(database_url, job_id)
            time.sleep(1.5)
            assert caption_done(database_url, job_id) == stopped_at < 240
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(20)
    pending = [r for r in shard_rows(database_url, job_id, "caption") if r[1] == "pending"]
    assert pending
