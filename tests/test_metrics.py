"""Clustering scores on small cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from analysis_service.evaluation.metrics import (
    adjusted_rand_index,
    clustering_accuracy,
    normalized_mutual_information,
)

TRUTH = ["a", "a", "a", "b", "b", "b"]


def test_perfect_clustering_with_other_names():
    predicted = ["x", "x", "x", "y", "y", "y"]
    assert clustering_accuracy(TRUTH, predicted) == 1.0
    assert adjusted_rand_index(TRUTH, predicted) == pytest.approx(1.0)
    assert normalized_mutual_information(TRUTH, predicted) == pytest.approx(1.0)


def test_one_mistake():
    predicted = ["x", "x", "y", "y", "y", "y"]
    assert clustering_accuracy(TRUTH, predicted) == pytest.approx(5 / 6)
    # By hand: pairs within cells 1 + 3 = 4, rows 3 + 3 = 6, columns 1 + 6 = 7, C(6,2) = 15,
    # expected 6 * 7 / 15 = 2.8, maximum (6 + 7) / 2 = 6.5.
    assert adjusted_rand_index(TRUTH, predicted) == pytest.approx((4 - 2.8) / (6.5 - 2.8))


def test_everything_in_one_cluster():
    predicted = ["x"] * 6
    assert clustering_accuracy(TRUTH, predicted) == 0.5
    assert adjusted_rand_index(TRUTH, predicted) == pytest.approx(0.0)
    assert normalized_mutual_information(TRUTH, predicted) == pytest.approx(0.0)


def test_nmi_against_a_hand_computed_value():
    truth, predicted = ["a", "a", "b", "b"], ["x", "y", "y", "y"]
    mi = (
        0.25 * math.log(0.25 / (0.5 * 0.25))
        + 0.25 * math.log(0.25 / (0.5 * 0.75))
        + 0.5 * math.log(0.5 / (0.5 * 0.75))
    )
    h_t = math.log(2)
    h_p = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert normalized_mutual_information(truth, predicted) == pytest.approx(mi / ((h_t + h_p) / 2))
