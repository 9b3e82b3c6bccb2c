"""The LLM cost estimate a job shows before discovery (reasoners/estimate.py)."""

from __future__ import annotations

from analysis_service.reasoners.estimate import (
    Group,
    assignment_cost,
    estimate,
    refine_rounds,
    vote_rounds,
)
from analysis_service.settings import DiscoverySteps

CLASS = [Group(images=350, caption_tokens=90)]
MAX_TOKENS = 2048


def test_early_stopping_is_expected_and_every_round_is_the_worst_case():
    early = estimate(DiscoverySteps(saturation_rounds=2), CLASS, False, None, MAX_TOKENS)
    every = estimate(DiscoverySteps(saturation_rounds=0), CLASS, False, None, MAX_TOKENS)
    assert every["calls"] == every["worst_calls"] == early["worst_calls"]
    assert every["tokens"] == every["worst_tokens"] == early["worst_tokens"]
    assert early["fixed_tokens"] < every["fixed_tokens"] / 2
    assignment = [e["tokens"] - e["fixed_tokens"] for e in (early, every)]
    assert abs(assignment[0] - assignment[1]) <= 1  # each total rounded up on its own


def test_expected_rounds_grow_with_patience_and_never_pass_the_maximum():
    rounds = [
        vote_rounds(DiscoverySteps(saturation_rounds=n), 20, 20, 350, lag=1.2) for n in range(20)
    ]
    assert rounds[0] == 20 and rounds[1:] == sorted(rounds[1:])
    assert all(r <= 20 for r in rounds) and rounds[1] >= 2
    refine = [refine_rounds(DiscoverySteps(saturation_rounds=n), 5) for n in range(30)]
    assert refine[0] == 20 and refine[-1] == 20 and refine[1] < refine[2] < refine[3]


def test_a_class_no_larger_than_a_sample_pays_one_round_per_loop():
    steps = DiscoverySteps(saturation_rounds=0)
    assert vote_rounds(steps, 10, 20, 20) == 1
    assert vote_rounds(steps, 10, 20, 21) == 10


def test_assignment_calls_count_the_batches_that_long_answers_split():
    steps, group = DiscoverySteps(), Group(images=350, caption_tokens=90)
    assert assignment_cost(steps, group, 5, 10, MAX_TOKENS).calls == 9  # 40 a call
    assert assignment_cost(steps, group, 30, 10, MAX_TOKENS).calls == 25  # 14 a call
    assert assignment_cost(steps, group, 30, 10, 64).calls == 350  # one a call
