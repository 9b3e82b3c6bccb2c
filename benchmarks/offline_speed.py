"""Speed of the offline reasoner on synthetic captions, called as the pipeline calls it.

Organization: propose on a seeded sample of DISCOVERY_SAMPLE_SIZE captions, then assign every
caption in pages of ASSIGN_BATCH_SIZE. Per-class: propose and assign each class's captions.
"""

from __future__ import annotations

import random
import time

from analysis_service.reasoners.base import Goal
from analysis_service.reasoners.tfidf_cluster import TfidfClusterReasoner
from analysis_service.settings import AnalysisSettings

PLACES = "kitchen beach forest street office stadium classroom garden market station".split()
ACTIONS = "riding cooking reading running climbing playing painting fishing walking jumping".split()
THINGS = "bicycle guitar book ball horse camera laptop umbrella boat kite dog cat".split()
FILLER = "small large red blue green white wooden old young bright sunny busy quiet".split()


def caption(rng: random.Random) -> str:
    """A caption in the captioner's style: subject, action, object, place, a few fillers."""
    return (
        f"The image features a {rng.choice(FILLER)} person {rng.choice(ACTIONS)} a "
        f"{rng.choice(THINGS)} in a {rng.choice(PLACES)}. There is a {rng.choice(FILLER)} "
        f"{rng.choice(THINGS)} nearby, and the scene looks {rng.choice(FILLER)}."
    )


def organization(n: int = 100_000, k: int = 40) -> tuple[str, str]:
    settings = AnalysisSettings()
    rng = random.Random(0)
    captions = [caption(rng) for _ in range(n)]
    reasoner = TfidfClusterReasoner()
    started = time.perf_counter()
    sample = random.Random(1).sample(captions, min(n, settings.discovery_sample_size))
    dims = reasoner.propose_sync("synthetic", sample, 0, Goal("activity", k))
    page = settings.assign_batch_size
    for start in range(0, n, page):
        reasoner.assign_sync("synthetic", dims, captions[start : start + page])
    seconds = time.perf_counter() - started
    return (f"offline organization, {n:,} captions, K={k}", f"{seconds:.1f} s (target < 30 s)")


def per_class(classes: int = 1000, per: int = 100) -> tuple[str, str]:
    rng = random.Random(0)
    reasoner = TfidfClusterReasoner()
    started = time.perf_counter()
    for index in range(classes):
        captions = [caption(rng) for _ in range(per)]
        dims = reasoner.propose_sync(f"class{index}", captions, 0)
        reasoner.assign_sync(f"class{index}", dims, captions)
    seconds = time.perf_counter() - started
    return (
        f"offline per-class, {classes:,} classes x {per} captions",
        f"{seconds:.1f} s (target < 60 s)",
    )


def run() -> list[tuple[str, str]]:
    return [organization(), per_class()]
