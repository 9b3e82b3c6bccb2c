"""`make eval`: discovery scored against ground truth on real LLaVA captions.

Without LLM_BASE_URL: the offline reasoner, leave-one-set-out, next to the TF-IDF + k-means
baseline and the paper, each a mean ± std over seeds (benchmarks/offline_eval.py; EVAL_SEEDS
sets how many, 5 by default). With it, the LLM reasoner through the product's own pipeline on
an embedded Postgres under .state/eval (its answers are cached there, so a second run costs
nothing): organization mode on cifar10, ppmi and location (clustering accuracy with Hungarian
matching, ARI, NMI, next to the paper's numbers), and per-class mode on metashift cat and dog
(how well the best discovered dimension recovers indoor/outdoor).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from analysis_service.db import make_engine, make_sessionmaker
from analysis_service.embedded_db import resolve_database_url
from analysis_service.evaluation.metrics import (
    adjusted_rand_index,
    clustering_accuracy,
    normalized_mutual_information,
)
from analysis_service.jobs import schemas
from analysis_service.migrate import upgrade
from analysis_service.reasoners.tfidf_cluster import TfidfClusterReasoner
from analysis_service.settings import AnalysisSettings
from analysis_service.subpopulations.repository import assignments_page
from benchmarks import offline_eval
from benchmarks.inprocess import run_to_end

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ssdllm-captions"
# (dataset, criterion, K, paper SSD-LLM accuracy, IC|TC as reported by SSD-LLM)
ORGANIZATION = [
    ("cifar10", "object", 10, 0.921, 0.911),
    ("ppmi", "musical instrument", 7, 0.955, 0.934),
    ("location", "location", 10, 0.705, 0.671),
]


async def _run(settings: AnalysisSettings, sessionmaker, body: schemas.JobCreate):  # type: ignore[no-untyped-def]
    """The assignment rows (image, class, dimension, attribute, note) of a finished job."""
    view = await run_to_end(settings, sessionmaker, body)
    async with sessionmaker() as session:
        return await assignments_page(session, view.id, None)


def _truth_of_metashift(name: str) -> str:
    return "indoor" if "(indoor)" in name else "outdoor"


async def _organization_lines(settings: AnalysisSettings, sessionmaker) -> list[str]:  # type: ignore[no-untyped-def]
    lines = [
        "organization (all images pooled, criterion given, K = number of true classes)",
        f"  {'dataset':<10} {'criterion':<20} {'acc':>6} {'ARI':>6} {'NMI':>6}"
        "   paper SSD-LLM / IC|TC",
    ]
    for name, criterion, k, paper, ictc in ORGANIZATION:
        body = schemas.JobCreate(
            captions_path=f"{name}/{name}.csv",
            mode="organization",
            criterion=criterion,
            num_attributes=k,
            subject=name,
            seed=0,
        )
        rows = await _run(settings, sessionmaker, body)
        truth = [r[1] for r in rows]
        predicted = [r[3] for r in rows]
        acc = clustering_accuracy(truth, predicted)
        ari = adjusted_rand_index(truth, predicted)
        nmi = normalized_mutual_information(truth, predicted)
        lines.append(
            f"  {name:<10} {criterion:<20} {acc:6.3f} {ari:6.3f} {nmi:6.3f}   "
            f"{paper:.3f} / {ictc:.3f}"
        )
    return lines


def _dimension_scores(pairs: list[tuple[str, str]]) -> tuple[float, float, float]:
    """NMI, purity and 2-way accuracy of one dimension's attributes against the truth."""
    truth, predicted = [t for t, _ in pairs], [p for _, p in pairs]
    majority: dict[str, Counter[str]] = defaultdict(Counter)
    for t, p in pairs:
        majority[p][t] += 1
    purity = sum(c.most_common(1)[0][1] for c in majority.values()) / len(pairs)
    nmi = normalized_mutual_information(truth, predicted)
    return nmi, purity, clustering_accuracy(truth, predicted)


async def _metashift_lines(settings: AnalysisSettings, sessionmaker) -> list[str]:  # type: ignore[no-untyped-def]
    lines = [
        "per-class (metashift): the discovered dimension closest to indoor/outdoor",
        f"  {'class':<6} {'best dimension':<16} {'NMI':>6} {'purity':>7} {'acc(2)':>7}  dims",
    ]
    for cls in ("cat", "dog"):
        body = schemas.JobCreate(captions_path=f"metashift/{cls}.csv", seed=0)
        rows = await _run(settings, sessionmaker, body)
        by_dim: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for image, _, dimension, attribute, _ in rows:
            by_dim[dimension].append((_truth_of_metashift(image), attribute))
        scored = [(*_dimension_scores(pairs), dim) for dim, pairs in by_dim.items()]
        nmi, purity, acc, best = max(scored)
        lines.append(
            f"  {cls:<6} {best:<16} {nmi:6.3f} {purity:7.3f} {acc:7.3f}  "
            f"{', '.join(sorted(by_dim))}"
        )
    return lines


async def evaluate(settings: AnalysisSettings, sessionmaker) -> list[str]:  # type: ignore[no-untyped-def]
    lines = [f"reasoner: llm:{settings.llm_model}", ""]
    lines += await _organization_lines(settings, sessionmaker)
    lines.append("")
    return lines + await _metashift_lines(settings, sessionmaker)


def _offline() -> tuple[list[str], list[str]]:
    """The report, and how the shipped defaults differ from the all-sets choice (nothing when
    they are that choice)."""
    lines = [f"reasoner: {TfidfClusterReasoner.name} (offline)", ""]
    organization = offline_eval.organization(DATA)
    lines += organization.lines
    lines.append("")
    lines += offline_eval.per_class_lines(DATA)
    return lines, offline_eval.default_mismatches(organization.chosen_on_all_sets)


async def main_async() -> int:
    if not DATA.is_dir():
        print(
            f"evaluation data not found at {DATA}; it lives beside the repository in "
            "shared/data/ssdllm-captions",
            file=sys.stderr,
        )
        return 2
    if not AnalysisSettings().llm_base_url:
        started = time.perf_counter()
        lines, drift = await asyncio.to_thread(_offline)
        print("\n".join(lines))
        print(f"\n({time.perf_counter() - started:.0f} s)")
        if drift:
            print(
                "ClusterSettings defaults are not what tuning on all sets chooses: "
                + "; ".join(drift),
                file=sys.stderr,
            )
            return 1
        return 0
    settings = AnalysisSettings(data_roots=str(DATA), state_dir=ROOT / ".state" / "eval")
    url = resolve_database_url(settings, database="subpop_eval")
    upgrade(url)
    settings = settings.model_copy(update={"database_url": url})
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        lines = await evaluate(settings, make_sessionmaker(engine))
    finally:
        await engine.dispose()
    print("\n".join(lines))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


def main() -> None:
    sys.exit(asyncio.run(main_async()))


if __name__ == "__main__":
    main()
