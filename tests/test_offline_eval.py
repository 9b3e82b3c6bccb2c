"""The tuning protocol of `make eval`'s offline part, on made-up scores (the real run needs the
evaluation sets and minutes)."""

from __future__ import annotations

import dataclasses

import pytest

from analysis_service.reasoners.tfidf_settings import ClusterSettings
from benchmarks.offline_eval import (
    GRID,
    SEEDS,
    SETS,
    Scores,
    _tuning,
    action_truth,
    choose,
    default_mismatches,
)


def test_the_shipped_defaults_are_a_point_of_the_tuning_grid():
    defaults = ClusterSettings()
    fields = {f.name for f in dataclasses.fields(ClusterSettings)}
    for key, values in GRID.items():
        assert key in fields
        assert getattr(defaults, key) in values


def test_a_default_that_is_not_the_all_sets_choice_is_reported():
    assert default_mismatches(ClusterSettings()) == []
    key = next(iter(GRID))
    other = next(v for v in GRID[key] if v != getattr(ClusterSettings(), key))
    drift = default_mismatches(dataclasses.replace(ClusterSettings(), **{key: other}))
    assert len(drift) == 1 and drift[0].startswith(f"{key}:")


def test_the_choice_sees_only_the_sets_it_is_given_and_breaks_ties_by_grid_order():
    tuning = {
        (0, "a"): 0.5, (0, "b"): 0.5, (0, "held-out"): 0.9,
        (1, "a"): 0.6, (1, "b"): 0.6, (1, "held-out"): 0.1,
        (2, "a"): 0.7, (2, "b"): 0.5, (2, "held-out"): 0.1,
    }  # fmt: skip
    assert choose(tuning, 3, ["a", "b"]) == 1  # 2 ties 1 on the mean: the first wins
    assert choose(tuning, 3, ["a", "b", "held-out"]) == 0


def test_the_choice_reads_each_point_s_mean_over_the_seeds():
    """One lucky seed does not win: point 1 is best on seed 0 only, point 0 on average."""
    sets = [s.name for s in SETS]
    assert len(SEEDS) >= 3
    lucky = {seed: 0.9 if seed == SEEDS[0] else 0.1 for seed in SEEDS}
    table = {
        (index, name, seed): Scores(lucky[seed] if index == 1 else 0.5, 0.0, 0.0)
        for index in (0, 1)
        for name in sets
        for seed in SEEDS
    }
    tuning = _tuning(table, 2)
    assert tuning[1, sets[0]] == pytest.approx(sum(lucky.values()) / len(SEEDS))
    assert choose(tuning, 2, sets[1:]) == 0


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("playing_guitar_012.jpg", "playing_guitar"),
        ("playing guitar_3.jpg", "playing_guitar"),
        ("watching_TV_101.jpg", "watching_TV"),
        ("reading_7.jpg", "reading"),
    ],
)
def test_the_action_set_reads_its_truth_from_the_file_name(name: str, action: str):
    assert action_truth(name) == action
