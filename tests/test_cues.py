"""Which words of a caption answer a criterion (the offline reasoner's focusing step)."""

from __future__ import annotations

import pytest

from analysis_service.reasoners.cues import Focus, facet_of


def test_an_action_is_read_with_or_without_an_auxiliary_verb():
    focus = Focus("activity", [])
    assert focus.facet_text("the image features a man riding a horse in a field.") == "riding horse"
    assert focus.facet_text("a woman is looking through a microscope.") == "looking microscope"
    assert focus.facet_text("two children are blowing bubbles.") == "blowing bubbles"


@pytest.mark.parametrize(
    "caption",
    [
        "a tall tower beside the building.",  # a participle after an article is a noun
        "a quiet street during the day.",  # -ing words that are never an action
        "a cat sits on something soft.",
    ],
)
def test_nouns_and_function_words_in_ing_are_not_actions(caption: str):
    assert Focus("action", []).facet_text(caption) == ""


def test_each_facet_is_found_from_the_words_of_its_criterion():
    assert facet_of("What is the person doing? (activity)") is not None
    assert facet_of("activity").name == "activity"  # type: ignore[union-attr]
    assert facet_of("location").name == "place"  # type: ignore[union-attr]
    assert facet_of("emotion").name == "mood"  # type: ignore[union-attr]
    assert facet_of("object") is None


def test_the_sentences_that_name_the_criterion_are_found_when_captions_name_it_often():
    captions = [
        "a man is playing a musical instrument. it is a cello.",
        "the woman holds an instrument, a violin, on a stage.",
        "a boy sits on a chair.",
    ]
    focus = Focus("musical instrument", captions)
    assert focus.names_criterion
    assert focus.named_text(captions[0]) == "a man is playing a musical instrument."
    assert focus.named_text(captions[2]) == ""
    assert not Focus("musical instrument", ["a boy sits on a chair."] * 40).names_criterion
