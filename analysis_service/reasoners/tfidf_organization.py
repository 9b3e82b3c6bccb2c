"""Organization mode of the offline reasoner (tfidf_cluster): the whole sample grouped by one
criterion into exactly K groups (K given) or the K of best silhouette.

Captions in the focused LSA space (tfidf_space) are grouped by k-means (kmeans.py), of many
restarts the one the restart rule keeps; each group is named by its most distinctive terms
(tfidf_naming) and keeps its centroid, which every caption is later assigned by.
"""

from __future__ import annotations

import numpy as np

from analysis_service.reasoners.base import DimensionProposal
from analysis_service.reasoners.kmeans import SILHOUETTE_SAMPLE, best_restart, distances, silhouette
from analysis_service.reasoners.tfidf_groups import FittedGroups
from analysis_service.reasoners.tfidf_naming import UNNAMED, distinctive, group_names
from analysis_service.reasoners.tfidf_settings import ClusterSettings
from analysis_service.reasoners.tfidf_space import CaptionSpace


def choose_k(vectors: np.ndarray, seed: int, settings: ClusterSettings) -> int:
    """The K of best silhouette (on the unit vectors) between 2 and max_k."""
    n = len(np.unique(vectors.round(6), axis=0))
    sample = np.arange(len(vectors))
    if len(sample) > SILHOUETTE_SAMPLE:
        sample = np.random.RandomState(seed).choice(len(vectors), SILHOUETTE_SAMPLE, False)
    distance = distances(vectors[sample])
    best_k, best = 2, -2.0
    for k in range(2, min(settings.max_k, n - 1) + 1):
        labels = best_restart(vectors, k, seed, 3, algorithm=settings.algorithm).labels
        score = silhouette(distance, labels[sample], k)
        if score > best:
            best_k, best = k, score
    return best_k


def organize(
    settings: ClusterSettings, criterion: str, texts: list[str], seed: int, k: int | None
) -> tuple[DimensionProposal, FittedGroups | None]:
    """The criterion's dimension with its groups' names, and the fit to assign captions by
    (None when the captions have no word to group by)."""
    s = settings
    dimension = criterion.strip().lower()
    try:
        space = CaptionSpace(s, criterion, texts, seed)
    except ValueError:  # no word occurs in the captions: nothing to group by
        return DimensionProposal(dimension, [UNNAMED]), None
    terms = space.tfidf(texts)
    vectors = space.embed(terms)
    distinct = len(np.unique(vectors.round(6), axis=0))
    if k is None:
        k = choose_k(vectors, seed, s) if distinct > 2 else distinct
    k = max(1, min(k, distinct))
    fitted = (
        best_restart(vectors, k, seed, s.restarts, s.restart_choice, s.algorithm) if k > 1 else None
    )
    labels = fitted.labels if fitted is not None else np.zeros(len(texts), dtype=int)
    centroids = fitted.centroids if fitted is not None else vectors[:1]
    vocabulary = space.vectorizer.get_feature_names_out()
    names = group_names(distinctive(terms, labels, k), vocabulary, s.name_terms)
    return DimensionProposal(dimension, names), FittedGroups(space, centroids)
