"""`make demo`: run one job end to end over HTTP and print the discovered structure, then
what a user does next: predictions of a model that fails on one discovered group, the slices
that find it, group labels for robust training and the rarest subpopulations.

Reuses services already listening on ANALYSIS_PORT, else starts `make serve`'s launcher in the
background and stops it at the end.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from analysis_service.auth.keys import env_key_secrets
from analysis_service.demo_links import next_steps
from analysis_service.jobs.lifecycle import TERMINAL, JobStatus
from analysis_service.launcher import LauncherSettings, port_in_use
from analysis_service.sample_data import make_sample_dataset

SAMPLE = Path("data/sample")
#: The synthetic model: this share of the planted group's images predicted wrong, and of the
#: others; drawn with a fixed seed, so every run plants the same errors.
PLANTED_ERROR_RATE = 0.75
BASE_ERROR_RATE = 0.05
PREDICTIONS_SEED = 0
#: The planted group is a discovered attribute about this share of its class, with at least
#: SLICE_MIN_SIZE images: large enough to test, small enough to hide in overall accuracy.
PLANTED_SHARE = 0.3
SLICE_MIN_SIZE = 10


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


Group = tuple[str, str, str]  # class, dimension, attribute


def planted_group(subpopulations: list[dict[str, Any]]) -> Group | None:
    """The discovered attribute to make the model fail on: of those (not `other`) with at
    least SLICE_MIN_SIZE images, the one whose share of its class is nearest PLANTED_SHARE,
    in a dimension every class has when there is one (its group labels then span them all)."""
    dims_of: dict[str, set[str]] = {}
    for s in subpopulations:
        dims_of.setdefault(s["class"], set()).add(s["dimension"])
    everywhere = set.intersection(*dims_of.values()) if dims_of else set()
    fit = [s for s in subpopulations if not s["is_other"] and s["size"] >= SLICE_MIN_SIZE]
    if not fit:
        return None
    best = min(
        fit,
        key=lambda s: (
            s["dimension"] not in everywhere,
            abs(s["share"] - PLANTED_SHARE),
            s["class"],
            s["dimension"],
            s["attribute"],
        ),
    )
    return best["class"], best["dimension"], best["attribute"]


def planted_predictions(
    rows: list[dict[str, Any]], group: Group, seed: int = PREDICTIONS_SEED
) -> list[dict[str, str]]:
    """A model's predictions for export rows (file_name, class, one column per dimension):
    PLANTED_ERROR_RATE of the group's images wrong, BASE_ERROR_RATE of the others (rounded
    to whole images, drawn with the seed); a wrong prediction is another class."""
    class_name, dimension, attribute = group
    classes = sorted({row["class"] for row in rows})
    rng = random.Random(seed)
    ordered = sorted(rows, key=lambda r: r["file_name"])
    planted = [r for r in ordered if r["class"] == class_name and r.get(dimension) == attribute]
    rest = [r for r in ordered if not (r["class"] == class_name and r.get(dimension) == attribute)]
    wrong = {
        r["file_name"]
        for members, rate in ((planted, PLANTED_ERROR_RATE), (rest, BASE_ERROR_RATE))
        for r in rng.sample(members, round(rate * len(members)))
    }
    predictions = []
    for row in ordered:
        others = [c for c in classes if c != row["class"]]
        wrong_here = row["file_name"] in wrong and others
        prediction = rng.choice(others) if wrong_here else row["class"]
        predictions.append({"image": row["file_name"], "prediction": prediction})
    return predictions


def _export_rows(client: httpx.Client, job_url: str) -> list[dict[str, Any]]:
    resp = client.get(f"{job_url}/export", params={"format": "jsonl"}, timeout=300)
    return [json.loads(line) for line in resp.raise_for_status().text.splitlines() if line]


def _print_slices(client: httpx.Client, job_url: str, set_id: int) -> None:
    params = {"predictions": set_id, "min_size": SLICE_MIN_SIZE, "limit": 5}
    report = client.get(f"{job_url}/slices", params=params).raise_for_status().json()
    print(
        f"\nwhere the model fails: {report['tested']} slices of at least {SLICE_MIN_SIZE} images "
        f"tested, {report['significant']} significant (q <= {report['alpha']}); the top ones:"
    )
    for item in report["items"]:
        mark = "*" if item["significant"] else " "
        print(f"  {mark} {item['description']}  (q = {item['q_value']:.2g})")
    print(
        f"  (* significant; each slice's images: {job_url}/slices/images?predictions={set_id}&...)"
    )


def _print_groups(client: httpx.Client, job_url: str, group: Group, set_id: int) -> None:
    """The group labels of the planted dimension (of its class alone when the other classes
    have no such dimension)."""
    class_name, dimension, _ = group
    params: dict[str, Any] = {"dimension": dimension, "format": "csv", "predictions": set_id}
    resp = client.get(f"{job_url}/groups", params=params)
    if resp.status_code == 422:
        params["class"] = class_name
        resp = client.get(f"{job_url}/groups", params=params)
    rows = list(csv.DictReader(io.StringIO(resp.raise_for_status().text)))
    counts = Counter((int(r["group"]), r["y"], r["a"], r["class"], r["attribute"]) for r in rows)
    scope = f"class {params['class']}" if "class" in params else "every class"
    print(f"\ngroup labels for robust training (dimension '{dimension}', {scope}):")
    print(f"  {'group':>5} {'y':>3} {'a':>3}  {'class':<12} {'attribute':<20} images")
    for (g, y, a, cls, attr), n in sorted(counts.items()):
        print(f"  {g:>5} {y:>3} {a:>3}  {cls:<12} {attr:<20} {n:>6}")
    url = f"{str(client.base_url).rstrip('/')}{job_url}/groups?{urlencode(params)}"
    print(f"  as SubpopBench's metadata.csv (filename, split, y, a, group): curl '{url}'")


def _print_tail(client: httpx.Client, job_url: str) -> None:
    params = {"max_share": 0.1, "limit": 3}
    page = client.get(f"{job_url}/tail", params=params).raise_for_status().json()
    if not page["items"]:
        return
    print(f"\nrare subpopulations ({page['total']} below 10% of their class), the rarest:")
    for item in page["items"]:
        print(f"  {item['size']:>3} images  {item['template_prompt']}")


def _subpopulations(client: httpx.Client, job_url: str) -> list[dict[str, Any]]:
    """Every subpopulation of the job, page after page (the list is keyset-paged)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 10_000}
    while True:
        page = client.get(f"{job_url}/subpopulations", params=params).raise_for_status().json()
        found += page["items"]
        if page["next"] is None:
            return found
        params["after"] = page["next"]


def _act_on(client: httpx.Client, job: dict) -> None:
    """Predictions of a model failing on one planted group, then what finds and fixes it."""
    job_url = f"/v1/jobs/{job['id']}"
    group = planted_group(_subpopulations(client, job_url))
    rows = _export_rows(client, job_url)
    if group is None or len({row["class"] for row in rows}) < 2:
        print("\n(no slices demo: it needs two classes and a subpopulation of 10 images)")
        return
    class_name, dimension, attribute = group
    predictions = planted_predictions(rows, group)
    body = {"name": "demo-model", "predictions": predictions}
    resp = client.post(f"{job_url}/predictions", json=body, timeout=300)
    if resp.status_code != 201:
        print(f"\n(predictions refused: {resp.status_code} {resp.text[:300]})")
        return
    created = resp.json()
    print(
        f"\na synthetic model, planted to fail on {class_name} images whose {dimension} is "
        f"{attribute} ({PLANTED_ERROR_RATE:.0%} wrong there, {BASE_ERROR_RATE:.0%} elsewhere): "
        f"{created['matched']} predictions, accuracy {created['accuracy']:.1%}"
    )
    _print_slices(client, job_url, created["id"])
    _print_groups(client, job_url, group, created["id"])
    _print_tail(client, job_url)


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
            job = _run_job(client, dataset)
            _report(client, job)
            _act_on(client, job)
            base = str(client.base_url).rstrip("/")
            print(
                f"\nexplore: curl {base}/v1/jobs/{job['id']}/subpopulations   "
                f"(API docs: {base}/docs)"
            )
            print("\n".join(next_steps(settings, base, job["id"], server is not None, extra_root)))
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
