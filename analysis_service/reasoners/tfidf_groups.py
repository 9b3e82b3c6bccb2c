"""A fitted dimension of the offline reasoner (tfidf_cluster): the space its captions live in
and one unit centroid per attribute, and how it is rebuilt when its fit is not in memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis_service.reasoners.base import DimensionProposal
from analysis_service.reasoners.kmeans import unit
from analysis_service.reasoners.tfidf_naming import NAME_JOIN
from analysis_service.reasoners.tfidf_settings import ClusterSettings
from analysis_service.reasoners.tfidf_space import CaptionSpace, ClassSpace


@dataclass
class FittedGroups:
    """A fitted dimension: the space its captions live in and one unit centroid per attribute."""

    space: CaptionSpace | ClassSpace
    centroids: np.ndarray
    #: Per-class alternatives: a caption that names one takes it; centroids only decide the rest.
    by_terms: bool = False
    #: Into the space the centroids live in (a class's main split: its LSA), when not the same.
    projection: np.ndarray | None = None

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        if self.projection is not None:
            vectors = unit(vectors @ self.projection)
        return np.asarray(np.argmax(vectors @ self.centroids.T, axis=1))


def centroids_of(
    vectors: np.ndarray, labels: list[int | None], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unit mean vector of each label's captions; and which labels had any."""
    member = np.zeros((k, len(labels)))
    for row, label in enumerate(labels):
        if label is not None:
            member[label, row] = 1.0
    centroids = member @ vectors
    present = np.linalg.norm(centroids, axis=1) > 0
    return unit(centroids), present


def rebuild(
    settings: ClusterSettings, dim: DimensionProposal, texts: list[str], named: list[int | None]
) -> FittedGroups | None:
    """The dimension's centroids from the captions at hand, when its fit is not in memory (a
    job resumed in another process): the captions that name an attribute (or, in organization
    mode, are closest to its name's terms) seed its centroid, refined by a few nearest-centroid
    rounds."""
    try:
        space = CaptionSpace(settings, "", texts, 0, lsa=False)
    except ValueError:  # no word in these captions
        return None
    vectors = space.vectors(texts)
    k = len(dim.attributes)
    labels: list[int | None] = list(named)
    if all(i is None for i in named):
        queries = space.vectors([a.replace(NAME_JOIN, " ") for a in dim.attributes])
        labels = [int(i) for i in np.argmax(vectors @ queries.T, axis=1)]
    centroids, present = centroids_of(vectors, labels, k)
    if not present.any():
        return None
    for _ in range(3):
        similarity = np.where(present, vectors @ centroids.T, -np.inf)
        refined, now = centroids_of(vectors, [int(i) for i in np.argmax(similarity, axis=1)], k)
        centroids = np.where(now[:, None], refined, centroids)
    # An attribute no caption here is close to keeps a zero centroid: never the nearest.
    return FittedGroups(space, centroids, by_terms=any(i is not None for i in named))
