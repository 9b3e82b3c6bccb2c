"""The slice statistics without a database: the exact test is Fisher's, the interval Wilson's,
and false discoveries stay controlled under noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import proportion_confint

from analysis_service.slices.statistics import Cell, describe, one_sided_p, score


def _cell(errors: int, size: int, class_errors: int, class_size: int, attr: str = "water"):
    return Cell("red kite", (("background", attr),), size, errors, class_size, class_errors)


@pytest.mark.parametrize(
    ("k", "n", "k_all", "n_all"),
    [(12, 30, 20, 200), (0, 10, 5, 50), (10, 10, 10, 11), (3, 40, 30, 100), (1, 1, 1, 2)],
)
def test_the_p_value_is_fishers_exact_one_sided(k, n, k_all, n_all):
    table = [[k, n - k], [k_all - k, (n_all - n) - (k_all - k)]]
    expected = fisher_exact(table, alternative="greater").pvalue
    assert one_sided_p([_cell(k, n, k_all, n_all)])[0] == pytest.approx(expected, rel=1e-9)


def test_a_scored_slice_carries_wilson_the_rest_and_a_sentence():
    [s] = score([_cell(12, 30, 20, 200)], alpha=0.05)
    low, high = proportion_confint(12, 30, alpha=0.05, method="wilson")
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert s.baseline_error_rate == pytest.approx(8 / 170)
    assert s.gap == pytest.approx(12 / 30 - 8 / 170)
    assert s.significant and s.q_value == pytest.approx(s.p_value)
    assert describe(s) == (
        "red kite images whose background is water: 40% wrong (95% CI 25-58%) against 5% "
        "for the other red kite images"
    )


def test_whole_class_slices_are_not_tested_and_no_errors_means_nothing_significant():
    assert score([_cell(3, 50, 3, 50)], alpha=0.05) == []
    scored = score([_cell(0, 20, 0, 100, "water"), _cell(0, 80, 0, 100, "grass")], 0.05)
    assert scored and not any(s.significant for s in scored)
    assert all(s.p_value == 1.0 for s in scored)


def test_significant_slices_rank_first_by_gap_then_the_rest_by_p():
    cells = [
        _cell(5, 50, 40, 400, "a"),  # at the class rate
        _cell(30, 50, 40, 400, "b"),  # far above
        _cell(15, 50, 40, 400, "c"),  # above
        _cell(6, 40, 40, 400, "d"),
    ]
    ranked = [s.cell.conditions[0][1] for s in score(cells, alpha=0.05)]
    assert ranked[:2] == ["b", "c"]
    rest = [s for s in score(cells, alpha=0.05) if not s.significant]
    assert [s.p_value for s in rest] == sorted(s.p_value for s in rest)


def _noise_cells(rng: np.random.Generator) -> list[Cell]:
    """Errors at one rate everywhere: 5 classes x 3 dimensions x 4 attributes and their
    pairs, counted from per-image draws."""
    cells = []
    for c in range(5):
        n = 400
        wrong = rng.random(n) < 0.15
        attrs = rng.integers(0, 4, size=(3, n))
        total_k = int(wrong.sum())
        for d in range(3):
            for a in range(4):
                mask = attrs[d] == a
                cells.append(
                    Cell(
                        f"c{c}",
                        ((f"d{d}", f"a{a}"),),
                        int(mask.sum()),
                        int(wrong[mask].sum()),
                        n,
                        total_k,
                    )
                )
            for d2 in range(d + 1, 3):
                for a in range(4):
                    for b in range(4):
                        mask = (attrs[d] == a) & (attrs[d2] == b)
                        if mask.sum() >= 20:
                            conds = ((f"d{d}", f"a{a}"), (f"d{d2}", f"a{b}"))
                            cells.append(
                                Cell(
                                    f"c{c}",
                                    conds,
                                    int(mask.sum()),
                                    int(wrong[mask].sum()),
                                    n,
                                    total_k,
                                )
                            )
    return cells


def test_random_errors_give_almost_no_discoveries_over_many_seeds():
    """Under pure noise BH at 0.05 makes any discovery in at most about 5% of requests (the
    one-sided exact test is conservative, so fewer): over 40 fixed seeds, at most 4."""
    with_any = sum(
        any(s.significant for s in score(_noise_cells(np.random.default_rng(seed)), 0.05))
        for seed in range(40)
    )
    assert with_any <= 4


def test_a_part_of_a_failing_group_above_its_rate_by_chance_ranks_after_the_group():
    group = Cell("kite", (("background", "water"),), 200, 80, 1000, 160)
    part = Cell("kite", (("background", "water"), ("time", "night")), 40, 22, 1000, 160)
    ranked = score([part, group], alpha=0.05)
    assert ranked[1].gap > ranked[0].gap  # the part's gap is larger, by chance
    assert [s.cell for s in ranked] == [group, part]
