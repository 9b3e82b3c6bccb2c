"""LLM cost of discovery on the real waterbirds 'landbird' captions (3,682 images), through
the fake LLM with its one token rule (4 characters a token): our batched assignment against
the reference code's pattern (one call per image and dimension). Each mode runs on a fresh
database so that neither reuses the other's cached answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from analysis_service.database_admin import scratch_database
from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.jobs import schemas
from analysis_service.migrate import upgrade
from benchmarks.inprocess import fake_llm_settings, run_to_end
from tests.fakes.fake_llm import FakeLLM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ssdllm-captions"
CAPTIONS = "waterbirds/landbird.csv"


async def _one(url: str, base_url: str, mode: str) -> dict:
    settings = fake_llm_settings(url, DATA, base_url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    try:
        # Every round, as when these numbers were first taken; BENCH_ONLY=stopping measures
        # what early stopping saves.
        body = schemas.JobCreate(captions_path=CAPTIONS, assignment_mode=mode, saturation_rounds=0)  # type: ignore[arg-type]
        view = await run_to_end(settings, sessionmaker, body)
        spent = view.llm.spent.model_dump()
        return {**spent, "images": view.valid, "estimate": view.llm.estimate}
    finally:
        await engine.dispose()


def run(server_admin_url: str, name_prefix: str) -> list[tuple[str, str]]:
    if not (DATA / CAPTIONS).exists():
        return [("discovery cost", f"skipped: {DATA / CAPTIONS} not found")]
    results = {}
    with FakeLLM() as llm:
        for mode in ("batched", "per_image_dimension"):
            with scratch_database(server_admin_url, f"{name_prefix}_{mode}") as url:
                upgrade(url)
                results[mode] = asyncio.run(_one(url, llm.base_url, mode))
    ours, ref = results["batched"], results["per_image_dimension"]
    n = ours["images"]
    rows = []
    for label, r in (("batched (ours)", ours), ("per image and dimension (reference)", ref)):
        rows.append(
            (
                f"discovery, {label}, {n} landbird captions",
                f"{r['calls'] / n:.3f} calls/image, {r['tokens'] / n:,.0f} tokens/image "
                f"({r['calls']:,} calls, {r['tokens']:,} tokens; "
                f"estimated {r['estimate']['tokens']:,})",
            )
        )
    rows.append(
        (
            "discovery tokens per image, reference / ours",
            f"{ref['tokens'] / ours['tokens']:.1f}x fewer with batched assignment",
        )
    )
    return rows
