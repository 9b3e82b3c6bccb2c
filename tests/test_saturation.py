"""The stopping rules of discovery's round loops (reasoners/saturation.py)."""

from __future__ import annotations

import random

import pytest

from analysis_service.reasoners.saturation import Unchanged, Votes


def run(votes: Votes[str], rounds: list[set[str]]) -> int:
    """Feed rounds until the loop stops; the rounds it ran."""
    for proposed in rounds:
        if votes.stop():
            break
        votes.add(proposed)
    return votes.done


def test_a_loop_stops_after_n_rounds_that_bring_nothing_new():
    votes: Votes[str] = Votes(rounds=10, threshold=0.2, patience=2)
    assert run(votes, [{"color", "pose"}] * 10) == 3  # round 1, then two quiet ones
    assert votes.selected() == {"color", "pose"}


def test_a_candidate_dropping_out_and_coming_back_is_not_new():
    """'rare' sits near the threshold: out at round 5, when the bar passes its one vote, back
    at round 6 with a second one. Neither is new: the loop stops after six quiet rounds."""
    votes: Votes[str] = Votes(rounds=20, threshold=0.2, patience=6)
    rounds = [{"a", "rare"}, {"a"}, {"a"}, {"a"}, {"a"}, {"a", "rare"}] + [{"a"}] * 14
    assert run(votes, rounds) == 7
    assert votes.selected() == {"a", "rare"}


def test_a_loop_never_stops_early_while_rounds_bring_new_candidates_in():
    """Each name is proposed in two rounds in a row: a new one passes every round."""
    votes: Votes[str] = Votes(rounds=10, threshold=0.2, patience=2)
    rounds = [{f"n{r}", f"n{r - 1}"} for r in range(10)]
    assert run(votes, rounds) == 10


def test_zero_patience_runs_every_round_all_at_once():
    votes: Votes[str] = Votes(rounds=10, threshold=0.2, patience=0)
    assert votes.next_wave() == 10
    assert run(votes, [{"color"}] * 10) == 10


def test_rounds_are_asked_up_to_the_earliest_possible_stop_then_one_by_one():
    votes: Votes[str] = Votes(rounds=10, threshold=0.2, patience=2)
    assert votes.next_wave() == 3
    for _ in range(3):
        votes.add({"a", f"new{votes.done}"})
    assert not votes.stop() and votes.next_wave() == 1


def test_settled_needs_every_candidate_decided_and_no_room_for_a_new_one():
    votes: Votes[str] = Votes(rounds=10, threshold=0.2, patience=5)
    for _ in range(7):
        votes.add({"a"})
    assert not votes.settled()  # three rounds left: a new candidate could reach 3 > 2
    votes.add({"a", "b"})
    assert not votes.settled()  # 'b': one vote and two rounds left could make 3
    votes.add({"a"})
    assert votes.settled()  # 'b' can reach 2 at most; 'a' has 9; a new one 1
    assert votes.selected() == {"a"}


@pytest.mark.parametrize("seed", range(200))
def test_a_settled_selection_is_the_full_runs_whatever_comes_next(seed: int):
    """The exact rule never stops while a candidate could still change sides: wherever it
    says settled, the most adversarial continuations end in the same selection."""
    rng = random.Random(seed)
    rounds, threshold = rng.choice([(5, 0.2), (10, 0.2), (10, 0.3), (20, 0.2), (8, 0.5)])
    names = [f"c{i}" for i in range(6)]
    votes: Votes[str] = Votes(rounds=rounds, threshold=threshold, patience=99)
    while votes.done < rounds:
        votes.add({n for n in names if rng.random() < rng.choice([0.1, 0.3, 0.8])})
        if votes.settled():
            break
    if not votes.settled():
        return
    now = votes.selected()
    for push in [*names, "never seen", None]:  # one candidate in every round left, or none
        rest = Votes(rounds, threshold, 99, votes.counts.copy(), votes.done)
        while rest.done < rounds:
            rest.add({push} if push else set())
        assert rest.selected() == now


def test_an_unanswered_round_counts_as_a_round():
    votes: Votes[str] = Votes(rounds=10, threshold=0.2, patience=2)
    votes.add({"a"})
    votes.add([])
    assert votes.done == 2 and votes.selected() == {"a"}


def test_refinement_stops_after_n_rounds_that_changed_nothing():
    rule = Unchanged(patience=2)
    for changed in (True, False, True, False):
        rule.add(changed)
        assert not rule.stop()
    rule.add(False)
    assert rule.stop()
    off = Unchanged(patience=0)
    for _ in range(50):
        off.add(False)
    assert not off.stop()
