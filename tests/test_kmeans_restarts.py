"""k-means restarts of the offline reasoner: the silhouette they are ranked by, and the kept
restart on points where single k-means runs often land in a bad local optimum."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from analysis_service.evaluation.metrics import clustering_accuracy
from analysis_service.reasoners.kmeans import (
    Algorithm,
    RestartChoice,
    best_restart,
    distances,
    silhouette,
    spherical_kmeans,
    unit,
)


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight blobs, four large and four small: one k-means run in four puts two centres in one
    blob and merges two others."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 10)) * 3
    truth = np.repeat(np.arange(8), [60, 60, 60, 60, 20, 20, 20, 20])
    return centres[truth] + rng.normal(size=(len(truth), 10)), truth


def _accuracy(truth: np.ndarray, labels: np.ndarray) -> float:
    return clustering_accuracy([str(t) for t in truth], [str(x) for x in labels])


@pytest.mark.parametrize("k", [2, 5, 40])
def test_silhouette_is_scikit_learns(k: int):
    rng = np.random.default_rng(k)
    points = rng.normal(size=(300, 12))
    labels = rng.integers(0, k, size=300)
    labels[:2] = [0, k - 1]
    assert silhouette(distances(points), labels, k) == pytest.approx(
        silhouette_score(points, labels), abs=1e-5
    )


def test_silhouette_of_a_lone_point_and_of_one_group():
    points = np.random.default_rng(1).normal(size=(50, 4))
    lone = np.zeros(50, dtype=int)
    lone[7] = 1  # a group of one scores 0, as in scikit-learn
    assert silhouette(distances(points), lone, 2) == pytest.approx(
        silhouette_score(points, lone), abs=1e-5
    )
    assert silhouette(distances(points), np.zeros(50, dtype=int), 3) == -1.0


BOTH = pytest.mark.parametrize(
    ("choice", "algorithm"),
    [(c, a) for c in ("inertia", "silhouette") for a in ("euclidean", "spherical")],
)


@BOTH
def test_a_bad_restart_is_never_the_one_kept(choice: RestartChoice, algorithm: Algorithm):
    points, truth = _blobs()
    vectors = unit(points) if algorithm == "spherical" else points
    single = [best_restart(vectors, 8, s, 1, choice, algorithm).labels for s in range(20)]
    assert any(_accuracy(truth, labels) < 0.9 for labels in single)  # bad runs do happen
    for seed in range(8):
        kept = best_restart(vectors, 8, seed, 10, choice, algorithm)
        assert _accuracy(truth, kept.labels) == 1.0
        assert kept.centroids.shape == (8, 10)
        assert np.allclose(np.linalg.norm(kept.centroids, axis=1), 1.0)


@BOTH
def test_same_seed_same_restart_and_exactly_k_groups(choice: RestartChoice, algorithm: Algorithm):
    points, _ = _blobs(3)
    vectors = unit(points)
    for k in (2, 5, 12, 30):
        first = best_restart(vectors, k, 11, 6, choice, algorithm)
        second = best_restart(vectors, k, 11, 6, choice, algorithm)
        assert np.array_equal(first.labels, second.labels)
        assert np.array_equal(first.centroids, second.centroids)
        assert len(set(first.labels.tolist())) == k


def test_spherical_kmeans_gives_k_unit_centroids_the_same_for_a_seed():
    points, _ = _blobs(2)
    vectors = unit(points)
    labels, centroids = spherical_kmeans(vectors, 8, 4, 10)
    again, _ = spherical_kmeans(vectors, 8, 4, 10)
    assert np.array_equal(labels, again)
    assert centroids.shape == (8, 10)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0)
    assert len(set(labels.tolist())) == 8
