"""Slices and exports on a large finished job: the job's rows are written straight into the
database (benchmarks.synthetic_job), a prediction set with a planted failing group is posted,
then a slice request (pairs included) and a Parquet export are timed through the API in
process. BENCH_SLICE_IMAGES sets the size (default 100,000; 10,000 with BENCH_QUICK=1)."""

from __future__ import annotations

import asyncio
import io
import os
import random
import time

import httpx
import pyarrow.parquet as pq

from analysis_service.app import create_app
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.settings import AnalysisSettings
from benchmarks.synthetic_job import SyntheticImage, insert_job

CLASSES = [f"class{c}" for c in range(10)]
DIMENSIONS = {f"dimension{d}": [f"attribute{d}.{a}" for a in range(5)] for d in range(3)}


def _images(count: int) -> list[SyntheticImage]:
    rng = random.Random(0)
    return [
        SyntheticImage(
            f"{CLASSES[i % len(CLASSES)]}/{i:07d}.jpg",
            CLASSES[i % len(CLASSES)],
            {dim: rng.choice(attrs) for dim, attrs in DIMENSIONS.items()},
            caption=f"a synthetic image {i}",
        )
        for i in range(count)
    ]


def _predictions(images: list[SyntheticImage]) -> list[dict]:
    """10% wrong everywhere, 40% in one planted group."""
    rng = random.Random(1)
    rows = []
    for image in images:
        planted = image.class_name == "class0" and image.attributes["dimension0"] == "attribute0.0"
        wrong = rng.random() < (0.4 if planted else 0.1)
        other = CLASSES[(CLASSES.index(image.class_name) + 1) % len(CLASSES)]
        rows.append({"image": image.relpath, "prediction": other if wrong else image.class_name})
    return rows


async def _run(url: str, count: int) -> list[tuple[str, str]]:
    images = _images(count)
    engine = make_engine(url)
    start = time.perf_counter()
    async with make_sessionmaker(engine)() as session, session.begin():
        job_id = await insert_job(session, images)
    await engine.dispose()
    build_s = time.perf_counter() - start
    settings = AnalysisSettings(database_url=url, data_roots="/", max_request_bytes=256 << 20)
    app = create_app(settings)
    rows = [(f"synthetic job written, {count} images", f"{build_s:.1f} s")]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", timeout=600
        ) as api:
            base = f"/v1/jobs/{job_id}"
            start = time.perf_counter()
            posted = await api.post(
                f"{base}/predictions", json={"predictions": _predictions(images)}
            )
            posted.raise_for_status()
            rows.append(
                (f"predictions posted inline, {count} rows", f"{time.perf_counter() - start:.2f} s")
            )
            start = time.perf_counter()
            report = await api.get(f"{base}/slices", params={"predictions": posted.json()["id"]})
            report.raise_for_status()
            slice_s = time.perf_counter() - start
            top = report.json()["items"][0]["description"]
            tested = report.json()["tested"]
            rows.append(
                (
                    f"slice request with pairs, {count} images",
                    f"{slice_s:.2f} s ({tested} slices tested)",
                )
            )
            rows.append(("top slice", top))
            start = time.perf_counter()
            exported = await api.get(f"{base}/export", params={"format": "parquet"})
            exported.raise_for_status()
            export_s = time.perf_counter() - start
            parquet = pq.ParquetFile(io.BytesIO(exported.content))
            assert parquet.metadata.num_rows == count
            size_mib = len(exported.content) / 2**20
            rows.append(
                (f"Parquet export, {count} images", f"{export_s:.2f} s ({size_mib:.1f} MiB)")
            )
    return rows


def run(url: str, quick: bool) -> list[tuple[str, str]]:
    count = int(os.environ.get("BENCH_SLICE_IMAGES", "10000" if quick else "100000"))
    return asyncio.run(_run(url, count))
