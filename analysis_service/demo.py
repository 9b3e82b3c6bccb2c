"""`make demo`: run one job end to end over HTTP and print the discovered structure.

Reuses services already listening on ANALYSIS_PORT, else starts `make serve`'s launcher in the
background and stops it at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from analysis_service.auth.keys import env_key_secrets
from analysis_service.jobs.lifecycle import TERMINAL, JobStatus
from analysis_service.launcher import LauncherSettings, port_in_use
from analysis_service.sample_data import make_sample_dataset

SAMPLE = Path("data/sample")


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start_services(settings: LauncherSettings, extra_root: Path | None) -> subprocess.Popen:
    env = dict(os.environ)
    if extra_root is not None:
        env["DATA_ROOTS"] = f"{settings.data_roots}:{extra_root}"
    log_path = settings.state_dir / "demo-services.log"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting services (logs: {log_path}) ...", flush=True)
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "analysis_service.launcher"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _bar(done: int, total: int | None, width: int = 24) -> str:
    if not total:
        return ""
    filled = int(width * min(done, total) / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _poll(client: httpx.Client, job_id: str) -> dict:
    last = ""
    tty = sys.stdout.isatty()
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        stage = job.get("stage") or JobStatus.QUEUED
        prog = job["progress"].get(stage, {})
        line = f"{job['status']:<9} {stage:<10} {_bar(prog.get('done', 0), prog.get('total'))}"
        if line != last:
            print(("\r" + line.ljust(70)) if tty else line, end="" if tty else "\n", flush=True)
            last = line
        if job["status"] in TERMINAL:
            if tty:
                print()
            return job
        time.sleep(0.5)


def print_tree(structure: dict) -> None:
    for cls in structure["classes"]:
        print(f"\n{cls['class']}  ({cls['images']} images)")
        for dim in cls["dimensions"]:
            print(f"  {dim['dimension']}")
            for attr in dim["attributes"]:
                if attr["is_other"] and attr["size"] == 0:
                    continue
                share = f"{attr['share'] * 100:5.1f}%"
                print(f"    {attr['attribute']:<24} {attr['size']:>6}  {share}")


class DemoFailed(Exception):
    """The demo cannot go on; the message says why."""


def _dataset(dataset: Path | None) -> Path:
    if dataset is None:
        dataset = SAMPLE
        if not dataset.exists():
            print(f"creating a sample dataset in {dataset} ...")
            make_sample_dataset(dataset)
    return dataset.resolve()


def _stop_services(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(60)


def _ensure_services(
    client: httpx.Client, settings: LauncherSettings, extra_root: Path | None
) -> subprocess.Popen | None:
    """Use the services already running, else start them; the process started, if any."""
    if _ready(client):
        print(f"using the services already running at {str(client.base_url).rstrip('/')}")
        return None
    if port_in_use("127.0.0.1", settings.analysis_port):
        raise DemoFailed(
            f"port {settings.analysis_port} is in use by another program; "
            "run with ANALYSIS_PORT=<free port>"
        )
    server = _start_services(settings, extra_root)
    deadline = time.monotonic() + 180
    while not _ready(client):
        if server.poll() is not None or time.monotonic() > deadline:
            _stop_services(server)
            raise DemoFailed("services failed to start; see the log above")
        time.sleep(0.5)
    return server


def _run_job(client: httpx.Client, dataset: Path) -> dict:
    resp = client.post("/v1/jobs", json={"dataset_path": str(dataset)})
    if resp.status_code != 202:
        raise DemoFailed(f"job refused: {resp.status_code} {resp.text}")
    job_id = resp.json()["id"]
    print(f"job {job_id} on {dataset}")
    job = _poll(client, job_id)
    if job["status"] != JobStatus.SUCCEEDED:
        raise DemoFailed(f"job {job['status']}: {job.get('error')}")
    return job


def _report(client: httpx.Client, job: dict) -> None:
    print(
        f"{job['valid']} images analysed, {job['invalid']} skipped "
        f"in {job['duration_s']:.1f}s (captions: {job['caption_engine']}, "
        f"reasoner: {job['reasoner']})"
    )
    job_url = f"/v1/jobs/{job['id']}"
    print_tree(client.get(f"{job_url}/structure").raise_for_status().json())
    invalid = client.get(f"{job_url}/invalid-images").json()["items"]
    if invalid:
        print("\nskipped files:")
        for item in invalid[:10]:
            print(f"  {item['path']}: {item['reason']}")
    base = str(client.base_url).rstrip("/")
    print(f"\nexplore: curl {base}{job_url}/subpopulations   (API docs: {base}/docs)")


def run(dataset: Path | None) -> int:
    settings = LauncherSettings()
    dataset = _dataset(dataset)
    roots = settings.data_root_paths
    extra_root = None if any(dataset.is_relative_to(r) for r in roots) else dataset.parent
    server = None
    base = f"http://127.0.0.1:{settings.analysis_port}"
    # With ANALYSIS_API_KEYS set, the API wants one of them (the first is as good as any).
    keys = env_key_secrets(settings.analysis_api_keys.get_secret_value())
    headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
        try:
            server = _ensure_services(client, settings, extra_root)
            _report(client, _run_job(client, dataset))
            return 0
        except DemoFailed as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            if server is not None:
                _stop_services(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=None, help="Folder of class subfolders.")
    args = parser.parse_args()
    sys.exit(run(args.dataset))


if __name__ == "__main__":
    main()
