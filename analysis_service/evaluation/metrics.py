"""Clustering scores: accuracy under the best one-to-one matching (Hungarian), ARI and NMI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def _contingency(truth: Sequence[str], predicted: Sequence[str]) -> np.ndarray:
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must have the same length")
    t_index = {t: i for i, t in enumerate(sorted(set(truth)))}
    p_index = {p: i for i, p in enumerate(sorted(set(predicted)))}
    table = np.zeros((len(t_index), len(p_index)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        table[t_index[t], p_index[p]] += 1
    return table


def clustering_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of items whose cluster maps to their class under the best one-to-one matching."""
    table = _contingency(truth, predicted)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def _pairs(counts: np.ndarray) -> float:
    """Sum of C(n, 2) over counts."""
    return float((counts * (counts - 1) / 2).sum())


def adjusted_rand_index(truth: Sequence[str], predicted: Sequence[str]) -> float:
    table = _contingency(truth, predicted)
    n = table.sum()
    index = _pairs(table)
    rows = _pairs(table.sum(axis=1))
    cols = _pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_information(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """NMI with the arithmetic-mean normalisation (as scikit-learn's default)."""
    table = _contingency(truth, predicted).astype(float)
    n = table.sum()
    joint = table / n
    pt, pp = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pt @ pp)[nz])).sum())
    h_t, h_p = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    if h_t == 0 and h_p == 0:
        return 1.0
    return mi / ((h_t + h_p) / 2) if (h_t + h_p) > 0 else 0.0


def purity(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of items in their cluster's majority class."""
    return float(_contingency(truth, predicted).max(axis=0).sum() / len(truth))
