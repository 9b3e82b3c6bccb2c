"""The statistical offline reasoner on synthetic captions whose right grouping is known."""

from __future__ import annotations

import random

import numpy as np
import pytest

from analysis_service.evaluation.metrics import clustering_accuracy
from analysis_service.reasoners.base import OTHER, Goal
from analysis_service.reasoners.kmeans import Algorithm, RestartChoice
from analysis_service.reasoners.names import checked_proposals, name_problem
from analysis_service.reasoners.tfidf_alternatives import first_named, said_of_subject
from analysis_service.reasoners.tfidf_cluster import TfidfClusterReasoner
from analysis_service.reasoners.tfidf_naming import subject_words
from analysis_service.reasoners.tfidf_per_class import MAIN_DIVISION
from analysis_service.reasoners.tfidf_settings import ClusterSettings

PLACES = {
    "kitchen": "stove countertop sink oven",
    "beach": "sand waves ocean shore",
    "forest": "trees trail moss ferns",
}
FILLER = "small large red blue man woman child standing sitting holding bag hat".split()


def _place_captions(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Captions of people in one of three places, each named by its own words."""
    rng = random.Random(seed)
    truth, captions = [], []
    for i in range(n):
        place = list(PLACES)[i % len(PLACES)]
        words = PLACES[place].split()
        truth.append(place)
        captions.append(
            f"The image features a {rng.choice(FILLER)} {rng.choice(FILLER)} in a {place}. "
            f"There is a {rng.choice(words)} and a {rng.choice(words)} near the "
            f"{rng.choice(FILLER)}."
        )
    return truth, captions


def _dog_captions(n: int, seed: int = 0) -> list[str]:
    """Dogs on one ground each: grass, snow or couch never share a caption."""
    rng = random.Random(seed)
    return [
        f"A {rng.choice(['brown', 'black', 'white'])} dog {rng.choice(['lying', 'sitting'])} on "
        f"the {('grass', 'snow', 'couch')[i % 3]} with a {rng.choice(['ball', 'toy', 'stick'])}."
        for i in range(n)
    ]


async def _organize(reasoner: TfidfClusterReasoner, captions: list[str], k: int, seed: int = 0):  # type: ignore[no-untyped-def]
    dims = await reasoner.propose("people", captions, seed, Goal("location", k))
    answers = await reasoner.assign("people", dims, captions)
    return dims, [a.choices[dims[0].name] for a in answers]


async def test_recovers_a_known_grouping_with_exactly_k_valid_names():
    truth, captions = _place_captions(90)
    dims, predicted = await _organize(TfidfClusterReasoner(), captions, 3)
    assert len(dims) == 1 and len(dims[0].attributes) == 3
    assert all(name_problem(a) is None and a != OTHER for a in dims[0].attributes)
    assert checked_proposals(dims, "people") == dims  # nothing dropped, K groups stored
    assert clustering_accuracy(truth, predicted) == 1.0
    # Each group is named by its place's words.
    for place in PLACES:
        assert any(
            place in a or set(a.split()) & set(PLACES[place].split()) for a in dims[0].attributes
        )


async def test_exactly_k_groups_for_other_k_and_every_caption_assigned():
    _, captions = _place_captions(120, seed=3)
    for k in (2, 5, 8):
        dims, predicted = await _organize(TfidfClusterReasoner(), captions, k)
        assert len(set(dims[0].attributes)) == k
        assert set(predicted) <= set(dims[0].attributes)  # never 'other'


async def test_same_seed_same_result_different_seed_may_differ():
    _, captions = _place_captions(120, seed=5)
    first = await _organize(TfidfClusterReasoner(), captions, 6, seed=7)
    second = await _organize(TfidfClusterReasoner(), captions, 6, seed=7)
    assert first == second


async def test_a_resumed_job_assigns_from_the_stored_names_alone():
    """Another process has no fitted groups in memory: the names and captions suffice."""
    truth, captions = _place_captions(90, seed=2)
    dims, _ = await _organize(TfidfClusterReasoner(), captions, 3)
    fresh = TfidfClusterReasoner()
    answers = await fresh.assign("people", dims, captions)
    predicted = [a.choices[dims[0].name] for a in answers]
    assert set(predicted) <= set(dims[0].attributes)
    assert clustering_accuracy(truth, predicted) > 0.9


async def test_k_is_chosen_when_not_given():
    _, captions = _place_captions(90, seed=4)
    dims = await TfidfClusterReasoner().propose("people", captions, 0, Goal("location"))
    assert len(dims[0].attributes) == 3


async def test_per_class_finds_mutually_exclusive_alternatives_and_assigns_everyone():
    captions = _dog_captions(60)
    reasoner = TfidfClusterReasoner()
    dims = await reasoner.propose("dog", captions, 0)
    assert dims and all(len(d.attributes) >= 2 for d in dims)
    assert any({"grass", "snow", "couch"} <= set(d.attributes) for d in dims)
    settings = ClusterSettings()
    for dim in dims:
        if dim.name == MAIN_DIVISION:
            continue
        present = np.array(
            [[f" {a} " in f" {c.lower().rstrip('.')} " for a in dim.attributes] for c in captions]
        )
        df = present.sum(axis=0)
        together = present.T.astype(int) @ present.astype(int)
        expected = np.outer(df, df) / len(captions)
        off = ~np.eye(len(df), dtype=bool)
        assert (together[off] / expected[off] <= settings.max_cooccurrence).all()
    answers = await reasoner.assign("dog", dims, [*captions, "A dog."])
    for answer in answers:
        assert all(answer.choices[d.name] in d.attributes for d in dims)
    ground = next(d for d in dims if "grass" in d.attributes)
    assert [a.choices[ground.name] for a in answers[:3]] == ["grass", "snow", "couch"]


def test_first_named_alternative_wins():
    assert first_named(["on the snow near grass", "nothing"], ["grass", "snow"]) == [1, None]


async def test_empty_and_wordless_input():
    reasoner = TfidfClusterReasoner()
    assert await reasoner.propose("x", [], 0, Goal("location", 3)) == []
    dims = await reasoner.propose("x", ["...", "!!"], 0, Goal("location", 3))
    assert [len(d.attributes) for d in dims] == [1]
    assert await reasoner.propose("x", ["...", "!!"], 0) == []


def test_proposals_do_not_depend_on_the_process_hash_seed():
    """Workers differ in PYTHONHASHSEED; a resumed job must still be given the same structure."""
    import os
    import subprocess
    import sys

    script = (
        "import asyncio\n"
        "from analysis_service.reasoners.tfidf_cluster import TfidfClusterReasoner\n"
        "from tests.test_tfidf_cluster_reasoner import _dog_captions\n"
        "print(asyncio.run(TfidfClusterReasoner().propose('dog', _dog_captions(60), 0)))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, PYTHONHASHSEED=seed),
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1 and "Dimension" in next(iter(outputs))


def _cat_captions(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Cats indoors (two in three) or outdoors, each side described by its own words, with
    words shared by both sides around them."""
    rng = random.Random(seed)
    sides = {
        "indoor": "couch sofa blanket carpet pillow bed".split(),
        "outdoor": "grass garden tree fence sidewalk bushes".split(),
    }
    truth, captions = [], []
    for i in range(n):
        side = "outdoor" if i % 3 == 2 else "indoor"
        words = sides[side]
        truth.append(side)
        captions.append(
            f"The image features a {rng.choice(['black', 'white', 'gray', 'tabby'])} cat "
            f"{rng.choice(['resting', 'sitting', 'looking'])} on the {rng.choice(words)} near "
            f"the {rng.choice(words)}. The cat looks {rng.choice(['calm', 'curious', 'alert'])}."
        )
    return truth, captions


async def test_per_class_main_division_splits_the_class_in_two_and_assigns_everyone():
    truth, captions = _cat_captions(90)
    reasoner = TfidfClusterReasoner()
    dims = await reasoner.propose("cat", captions, 0)
    main = [d for d in dims if d.name == MAIN_DIVISION]
    assert len(main) == 1 and len(main[0].attributes) == 2
    assert checked_proposals(dims, "cat") == dims
    division = main[0]
    assert all(name_problem(a) is None and a != OTHER for a in division.attributes)
    answers = await reasoner.assign("cat", dims, captions)
    predicted = [a.choices[MAIN_DIVISION] for a in answers]
    assert set(predicted) == set(division.attributes)  # both sides used, never 'other'
    assert clustering_accuracy(truth, predicted) == 1.0
    # Each side is named by its own words, not the other side's.
    indoor_words = set("couch sofa blanket carpet pillow bed".split())
    outdoor_words = set("grass garden tree fence sidewalk bushes".split())
    for side, own, theirs in (
        ("indoor", indoor_words, outdoor_words),
        ("outdoor", outdoor_words, indoor_words),
    ):
        name = next(p for p, t in zip(predicted, truth, strict=True) if t == side)
        assert set(name.split(" / ")) & own and not set(name.split(" / ")) & theirs
    # A caption of neither side still gets one of the two.
    extra = await reasoner.assign("cat", main, ["A cat.", "..."])
    assert all(a.choices[MAIN_DIVISION] in division.attributes for a in extra)


async def test_per_class_main_division_is_deterministic_and_survives_a_resume():
    truth, captions = _cat_captions(90, seed=4)
    first = await TfidfClusterReasoner().propose("cat", captions, 3)
    second = await TfidfClusterReasoner().propose("cat", captions, 3)
    assert first == second
    main = [d for d in first if d.name == MAIN_DIVISION]
    # Another process has no fitted groups in memory: the names and captions suffice.
    answers = await TfidfClusterReasoner().assign("cat", main, captions)
    predicted = [a.choices[MAIN_DIVISION] for a in answers]
    assert set(predicted) <= set(main[0].attributes)
    assert clustering_accuracy(truth, predicted) > 0.9


async def test_per_class_main_division_needs_something_to_divide():
    """Identical captions have no division: no main-division dimension is proposed."""
    dims = await TfidfClusterReasoner().propose("cat", ["A cat on a couch."] * 20, 0)
    assert all(d.name != MAIN_DIVISION for d in dims)


@pytest.mark.parametrize("algorithm", ["euclidean", "spherical"])
@pytest.mark.parametrize("choice", ["silhouette", "inertia"])
async def test_either_restart_choice_gives_exactly_k_groups_deterministically(
    choice: RestartChoice, algorithm: Algorithm
):
    truth, captions = _place_captions(120, seed=6)
    reasoner = TfidfClusterReasoner(ClusterSettings(restart_choice=choice, algorithm=algorithm))
    dims, predicted = await _organize(reasoner, captions, 3, seed=2)
    assert len(set(dims[0].attributes)) == 3
    assert clustering_accuracy(truth, predicted) == 1.0
    assert await _organize(reasoner, captions, 3, seed=2) == (dims, predicted)
    for k in (2, 5):
        dims, predicted = await _organize(reasoner, captions, k, seed=2)
        assert len(set(dims[0].attributes)) == k and set(predicted) <= set(dims[0].attributes)


def test_subject_words_cover_singular_and_plural():
    assert {"cat", "cats"} <= subject_words("cat")
    assert {"box", "boxes"} <= subject_words("Boxes")
    assert {"black", "footed", "albatross"} <= subject_words("Black_footed_Albatross")


async def test_per_class_names_never_use_the_class_word():
    """The class word is in every caption, more often in some: it still names no group."""
    rng = random.Random(1)
    captions = []
    for i in range(90):
        place = ("couch", "grass")[i % 2]
        cats = "cat and another cat" if place == "couch" else "cat"
        verb = rng.choice(["rests", "sits"])
        captions.append(f"A {cats} {verb} on the {place}. The cat is calm.")
    dims = await TfidfClusterReasoner().propose("cat", captions, 0)
    assert dims
    for dim in dims:
        for attribute in dim.attributes:
            assert not set(attribute.split(" / ")) & {"cat", "cats"}


def _dog_posture_captions(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Dogs sitting, standing or lying; in every other caption a person is there first, doing
    another of the three: the words share captions, but never the dog."""
    rng = random.Random(seed)
    postures = ("sitting", "standing", "lying")
    truth, captions = [], []
    for i in range(n):
        posture = postures[i % 3]
        dog = f"a {rng.choice(['brown', 'black', 'white'])} dog {posture} on the floor"
        if i % 2:
            person = postures[(i + 1 + rng.randrange(2)) % 3]
            dog = f"a {rng.choice(['man', 'woman'])} {person} near {dog}"
        truth.append(posture)
        captions.append(f"The image features {dog}. It looks {rng.choice(['calm', 'alert'])}.")
    return truth, captions


async def test_per_class_alternatives_are_what_is_said_of_the_class_itself():
    """Postures of other subjects in the same caption neither break the group nor decide the
    dog's answer."""
    truth, captions = _dog_posture_captions(90)
    reasoner = TfidfClusterReasoner()
    dims = await reasoner.propose("dog", captions, 0)
    posture = next(d for d in dims if "sitting" in d.attributes)
    assert set(posture.attributes) == {"sitting", "standing", "lying"}
    answers = await reasoner.assign("dog", [posture], captions)
    assert [a.choices[posture.name] for a in answers] == truth
    # A resumed job, with only the stored names, answers the same.
    resumed = await TfidfClusterReasoner().assign("dog", [posture], captions)
    assert [a.choices[posture.name] for a in resumed] == truth


def test_the_alternative_said_of_the_class_wins_over_the_first_named():
    texts = ["a man standing near a dog sitting", "a woman sitting by a dog is lying", "a man"]
    alternatives = ["sitting", "standing", "lying"]
    said = said_of_subject([t.split() for t in texts], subject_words("dog"))
    assert said == [["sitting"], ["is", "lying"], []]
    assert first_named(texts, alternatives, said) == [0, 2, None]
    assert first_named(texts, alternatives) == [1, 0, None]
