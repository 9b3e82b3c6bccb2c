"""The statistics of slices, with no database: per slice, its error rate with a Wilson 95%
interval, a one-sided exact test that it errs more than the rest of its class, and
Benjamini-Hochberg q-values over every slice tested in one request.

The test is Fisher's exact test, one-sided ('greater'), on the 2x2 table [[k, n-k], [k', n'-k']]
of the slice (k errors of n) against the rest of its class (k' of n'). Conditioned on the
class's margins, the slice's error count is hypergeometric, so its p-value is
P(X >= k) for X ~ Hypergeometric(population n+n', successes k+k', draws n): the same number
`scipy.stats.fisher_exact(..., alternative="greater")` gives, computed for every slice at once
(a request tests thousands of pairs). Exact, so small slices get honest p-values; conditional
on the class, so no rate is estimated from the slice itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import hypergeom
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

#: The interval is always 95%, whatever alpha the discoveries are held to.
INTERVAL_ALPHA = 0.05


@dataclass(frozen=True)
class Cell:
    """A slice's counts and its class's: errors of size, within the class's errors of its
    size. conditions: (dimension, attribute) pairs, one or two."""

    class_name: str
    conditions: tuple[tuple[str, str], ...]
    size: int
    errors: int
    class_size: int
    class_errors: int


@dataclass(frozen=True)
class ScoredSlice:
    cell: Cell
    error_rate: float
    ci_low: float
    ci_high: float
    baseline_error_rate: float
    gap: float
    p_value: float
    q_value: float
    significant: bool


def testable(cell: Cell) -> bool:
    """A slice with images outside it in its class: there is a rest to compare with."""
    return 0 < cell.size < cell.class_size


def one_sided_p(cells: list[Cell]) -> np.ndarray:
    """P(a slice this size drawn from its class holds >= its errors), for every slice."""
    k = np.array([c.errors for c in cells])
    n = np.array([c.size for c in cells])
    total = np.array([c.class_size for c in cells])
    total_errors = np.array([c.class_errors for c in cells])
    return np.asarray(hypergeom.sf(k - 1, total, total_errors, n), dtype=float).clip(0.0, 1.0)


def score(cells: list[Cell], alpha: float) -> list[ScoredSlice]:
    """Every testable slice scored, ranked: significant ones first by gap (pairs that one of
    their attributes alone explains after the others), then the rest by p-value. q-values
    count every testable slice given, listed or not."""
    cells = [c for c in cells if testable(c)]
    if not cells:
        return []
    k = np.array([c.errors for c in cells])
    n = np.array([c.size for c in cells])
    rest_k = np.array([c.class_errors - c.errors for c in cells])
    rest_n = np.array([c.class_size - c.size for c in cells])
    low, high = proportion_confint(k, n, alpha=INTERVAL_ALPHA, method="wilson")
    p = one_sided_p(cells)
    reject, q, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
    rate, baseline = k / n, rest_k / rest_n
    scored = [
        ScoredSlice(
            cell=cell,
            error_rate=float(rate[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            baseline_error_rate=float(baseline[i]),
            gap=float(rate[i] - baseline[i]),
            p_value=float(p[i]),
            q_value=float(q[i]),
            significant=bool(reject[i]),
        )
        for i, cell in enumerate(cells)
    ]
    explained = _explained_by_a_parent(scored)
    return sorted(
        scored,
        key=lambda s: (
            not s.significant,
            s.significant and s in explained,
            -s.gap if s.significant else s.p_value,
            -s.gap,
        ),
    )


def _explained_by_a_parent(scored: list[ScoredSlice]) -> set[ScoredSlice]:
    """Significant pairs whose error rate is one of their significant single-attribute parents'
    (the parent's rate lies in the pair's interval): the simpler description says as much, so
    they rank after the slices that say something new. Without this a small part of a failing
    group, above its group's rate by chance, would outrank the group itself."""
    singles = {
        (s.cell.class_name, s.cell.conditions[0]): s
        for s in scored
        if s.significant and len(s.cell.conditions) == 1
    }
    explained = set()
    for s in scored:
        if not s.significant or len(s.cell.conditions) < 2:
            continue
        parents = [singles.get((s.cell.class_name, c)) for c in s.cell.conditions]
        if any(p is not None and s.ci_low <= p.error_rate <= s.ci_high for p in parents):
            explained.add(s)
    return explained


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def describe(s: ScoredSlice) -> str:
    """e.g. 'red kite images whose background is water: 41% wrong (95% CI 30-53%) against 8%
    for the other red kite images'."""
    c = s.cell
    whose = " and ".join(f"whose {dim} is {attr}" for dim, attr in c.conditions)
    return (
        f"{c.class_name} images {whose}: {_percent(s.error_rate)} wrong "
        f"(95% CI {100 * s.ci_low:.0f}-{_percent(s.ci_high)}) against "
        f"{_percent(s.baseline_error_rate)} for the other {c.class_name} images"
    )
