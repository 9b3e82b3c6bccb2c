"""k-means with restarts for the offline reasoner, and which restart it keeps.

One k-means run lands in one of many local optima, and on caption vectors those optima differ
by up to 0.3 in accuracy; which one a seed lands in is luck. Many restarts with a fixed rule for
keeping one make the result depend on the data, not on the seed: the tightest groups (inertia),
or the groups best separated from each other (silhouette). Neither rule looks at labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

RestartChoice = Literal["inertia", "silhouette"]
#: Euclidean k-means (scikit-learn) or spherical k-means (cosine, unit centroids).
Algorithm = Literal["euclidean", "spherical"]
#: Points a restart's silhouette is measured on: the distance matrix is quadratic in them.
SILHOUETTE_SAMPLE = 2000


def unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms > 0, norms, 1.0))


def distances(vectors: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows, from their dot products (single precision: they only
    rank restarts, and half the memory and time)."""
    vectors = vectors.astype(np.float32)
    squared = (vectors * vectors).sum(axis=1)
    gram = vectors @ vectors.T
    return np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0.0))


def silhouette(distance: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean silhouette of a labeling from a precomputed distance matrix, as scikit-learn's
    silhouette_score defines it (a point alone in its group scores 0), at the cost of one
    matrix product: many restarts are scored against the same distances. -1 when fewer than
    two groups are used."""
    onehot = np.eye(k, dtype=distance.dtype)[labels]
    sizes = onehot.sum(axis=0)
    if (sizes > 0).sum() < 2:
        return -1.0
    sums = distance @ onehot  # each point's summed distance to each group
    rows = np.arange(len(labels))
    own = sizes[labels]
    within = sums[rows, labels] / np.maximum(own - 1, 1)
    mean_to = np.where((onehot > 0) | (sizes == 0), np.inf, sums / np.maximum(sizes, 1))
    nearest = mean_to.min(axis=1)
    larger = np.maximum(within, nearest)
    score = (nearest - within) / np.where(larger > 0, larger, 1.0)
    return float(np.where(own > 1, score, 0.0).mean())


@dataclass(frozen=True)
class Partition:
    labels: np.ndarray
    centroids: np.ndarray  # unit length
    inertia: float


def _euclidean(vectors: np.ndarray, k: int, start: int, restarts: int = 1) -> Partition:
    fitted = KMeans(k, n_init=restarts, random_state=start).fit(vectors)
    return Partition(fitted.labels_, unit(fitted.cluster_centers_), float(fitted.inertia_))


def _spherical(vectors: np.ndarray, k: int, start: int, rounds: int = 100) -> Partition:
    """Spherical k-means: unit centroids, each point to the most similar (cosine), from
    scikit-learn's k-means++ start. A group left empty takes the point least like its own
    centroid, so every run has k groups."""
    centroids = unit(kmeans_plusplus(vectors, k, random_state=start)[0])
    labels = np.full(len(vectors), -1)
    for _ in range(rounds):
        similarity = vectors @ centroids.T
        new = np.argmax(similarity, axis=1)
        for empty in np.setdiff1d(np.arange(k), new):
            loneliest = int(np.argmin(similarity[np.arange(len(new)), new]))
            new[loneliest] = empty
            similarity[loneliest, empty] = np.inf
        if np.array_equal(new, labels):
            break
        labels = new
        sums = np.eye(k)[labels].T @ vectors
        centroids = np.where(np.linalg.norm(sums, axis=1, keepdims=True) > 0, unit(sums), centroids)
    inertia = float((1 - (vectors * centroids[labels]).sum(axis=1)).sum())
    return Partition(labels, centroids, inertia)


def best_restart(
    vectors: np.ndarray,
    k: int,
    seed: int,
    restarts: int,
    choice: RestartChoice = "inertia",
    algorithm: Algorithm = "euclidean",
) -> Partition:
    """k-means (Euclidean, or spherical on unit vectors) from `restarts` k-means++ starts drawn
    from `seed`; the restart kept is the one of least inertia, or of best silhouette (ties: the
    tighter one)."""
    if algorithm == "euclidean" and (choice == "inertia" or k < 2 or restarts < 2):
        return _euclidean(vectors, k, seed, restarts)
    rng = np.random.RandomState(seed)
    starts = rng.randint(np.iinfo(np.int32).max, size=max(restarts, 1))
    sample = np.arange(len(vectors))
    if len(sample) > SILHOUETTE_SAMPLE:
        sample = np.sort(rng.choice(len(vectors), SILHOUETTE_SAMPLE, replace=False))
    distance = distances(vectors[sample]) if choice == "silhouette" and k > 1 else None
    best: tuple[float, float, Partition] | None = None
    for start in starts:
        run = _spherical if algorithm == "spherical" else _euclidean
        fitted = run(vectors, k, int(start))
        score = silhouette(distance, fitted.labels[sample], k) if distance is not None else 0.0
        if best is None or (score, -fitted.inertia) > (best[0], -best[1]):
            best = (score, fitted.inertia, fitted)
    assert best is not None
    return best[2]


def spherical_kmeans(
    vectors: np.ndarray, k: int, seed: int, restarts: int, rounds: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (k-means++ starts, best of `restarts` by inertia) on a few hundred unit
    vectors, in numpy alone (a class's matrices are too small for an estimator's fixed cost):
    (labels, unit centroids)."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(restarts):
        centers = [int(rng.integers(n))]
        for _ in range(1, k):
            distance = np.maximum(1 - (vectors @ vectors[centers].T).max(axis=1), 0)
            total = distance.sum()
            p = distance / total if total > 0 else None
            centers.append(int(rng.choice(n, p=p)))
        centroids = vectors[centers]
        labels = np.full(n, -1)
        for _ in range(rounds):
            new = np.argmax(vectors @ centroids.T, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            sums = np.eye(k)[labels].T @ vectors
            centroids = np.where(
                np.linalg.norm(sums, axis=1, keepdims=True) > 0, unit(sums), centroids
            )
        inertia = float((1 - (vectors * centroids[labels]).sum(axis=1)).sum())
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, labels, centroids)
    assert best is not None
    return best[1], best[2]
