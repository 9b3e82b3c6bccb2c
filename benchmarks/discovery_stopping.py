"""What early stopping of the round loops saves (BENCH_ONLY=stopping), through the varied fake
LLM over HTTP (tests/fakes/varied_llm.py: answers that change from sample to sample as a
model's do) with its token rule (4 characters a token), on real LLaVA captions read at run
time:

- tokens and calls per image of one class of 350 and of 3,682 captions (waterbirds
  'landbird'), with every round (SATURATION_ROUNDS=0) and with the default, and how many of
  the (dimension, attribute) pairs the two runs share;
- the estimate a job shows before discovery against what it spent, on 1,000 classes of 50
  captions each (BENCH_STOPPING_CLASSES), per class and in organization mode (criterion
  'background'). The per-class job asks about 45 questions a class, one class after another:
  about 8 minutes per 100 classes on a busy 2-core machine.

Each job runs on a fresh database, so none reuses another's cached answers.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
from pathlib import Path

from sqlalchemy import select

from analysis_service.database_admin import scratch_database
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.jobs import schemas
from analysis_service.migrate import upgrade
from analysis_service.models import Attribute, Dimension
from benchmarks.inprocess import fake_llm_settings, run_to_end
from tests.fakes.varied_llm import VariedFakeLLM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ssdllm-captions"
LANDBIRD = DATA / "waterbirds" / "landbird.csv"
#: Most the estimate may be off from what a job spent.
ESTIMATE_TOLERANCE = 0.2
CLASSES = int(os.environ.get("BENCH_STOPPING_CLASSES", "1000"))


def real_captions(path: Path) -> list[tuple[str, str]]:
    """(image name, caption) of a shared captions file."""
    with path.open(newline="", encoding="utf-8") as f:
        return [(row[1], row[2]) for row in list(csv.reader(f))[1:]]


def write_class(target: Path, label: str, rows: list[tuple[str, str]]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "img_name", "caption"])
        writer.writerows((label, image, caption) for image, caption in rows)
    return target


def write_classes(target: Path, classes: int, per_class: int, seed: int = 0) -> Path:
    """`classes` classes of `per_class` real captions each, drawn from every shared set (a
    caption may serve several classes, under another image name)."""
    pool = [c for path in sorted(DATA.glob("*/*.csv")) for _, c in real_captions(path)]
    rng = random.Random(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "img_name", "caption"])
        for k in range(classes):
            for i, caption in enumerate(rng.sample(pool, per_class)):
                writer.writerow([f"class{k:04d}", f"class{k:04d}/{i:03d}.jpg", caption])
    return target


async def _job(
    url: str, data: Path, base_url: str, body: schemas.JobCreate
) -> tuple[schemas.Job, set[tuple[str, str]]]:
    settings = fake_llm_settings(url, data, base_url)
    engine = make_engine(url)
    try:
        sessionmaker = make_sessionmaker(engine)
        view = await run_to_end(settings, sessionmaker, body)
        async with sessionmaker() as session:
            query = select(Dimension.name, Attribute.name).join_from(Attribute, Dimension)
            pairs = {(d, a) for d, a in await session.execute(query) if a != "other"}
        return view, pairs
    finally:
        await engine.dispose()


def run_job(
    admin_url: str, name: str, data: Path, base_url: str, body: schemas.JobCreate
) -> tuple[schemas.Job, set[tuple[str, str]]]:
    """A job to its end on a fresh database: its view and its (dimension, attribute) pairs."""
    with scratch_database(admin_url, name) as url:
        upgrade(url)
        return asyncio.run(_job(url, data, base_url, body))


def _per_image(view: schemas.Job) -> str:
    n = view.valid
    return (
        f"{view.llm.spent.tokens / n:,.0f} tokens/image, {view.llm.spent.calls / n:.3f} calls/image"
    )


def _saving_rows(admin_url: str, prefix: str, data: Path, base_url: str) -> list[tuple[str, str]]:
    rows, landbird = [], real_captions(LANDBIRD)
    for size in (350, len(landbird)):
        sample = random.Random(size).sample(landbird, size)
        path = write_class(data / f"landbird-{size}.csv", "landbird", sample)
        runs = {}
        for sat in (0, None):
            body = schemas.JobCreate(captions_path=path.name, saturation_rounds=sat)
            runs[sat] = run_job(admin_url, f"{prefix}_{size}_{sat}", data, base_url, body)
        (full, full_pairs), (early, early_pairs) = runs[0], runs[None]
        shared = len(full_pairs & early_pairs) / max(1, len(full_pairs | early_pairs))
        label = f"LLM discovery, one class of {size:,} captions"
        rows.append((f"{label}, every round", _per_image(full)))
        rows.append(
            (
                f"{label}, early stopping",
                f"{_per_image(early)} ({full.llm.spent.tokens / early.llm.spent.tokens:.2f}x "
                f"fewer tokens; {shared:.0%} of the (dimension, attribute) pairs shared)",
            )
        )
    return rows


def _estimate_rows(admin_url: str, prefix: str, data: Path, base_url: str) -> list[tuple[str, str]]:
    path = write_classes(data / f"classes-{CLASSES}x50.csv", CLASSES, 50)
    rows = []
    for mode, criterion in (("per_class", None), ("organization", "background")):
        body = schemas.JobCreate(captions_path=path.name, mode=mode, criterion=criterion)  # type: ignore[arg-type]
        view, _ = run_job(admin_url, f"{prefix}_{mode}", data, base_url, body)
        estimate, spent = view.llm.estimate or {}, view.llm.spent
        off = max(
            abs(estimate["tokens"] / spent.tokens - 1), abs(estimate["calls"] / spent.calls - 1)
        )
        verdict = "ok" if off <= ESTIMATE_TOLERANCE else f"over {ESTIMATE_TOLERANCE:.0%}"
        rows.append(
            (
                f"LLM estimate vs spent, {CLASSES:,} classes x 50 captions, {mode}",
                f"{estimate['tokens']:,} vs {spent.tokens:,} tokens, {estimate['calls']:,} vs "
                f"{spent.calls:,} calls: off by {off:.0%} at most ({verdict})",
            )
        )
    return rows


def run(admin_url: str, prefix: str, state: Path) -> list[tuple[str, str]]:
    if not LANDBIRD.exists():
        return [("early stopping", f"skipped: {LANDBIRD} not found")]
    data = state / "stopping"
    with VariedFakeLLM() as llm:
        rows = _saving_rows(admin_url, prefix, data, llm.base_url)
        rows += _estimate_rows(admin_url, prefix, data, llm.base_url)
    return rows
