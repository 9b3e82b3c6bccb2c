"""What prompts show of a caption: its text as one line of data, without the lead-in that
captioners open with; the cost estimate measures captions the same way in SQL."""

from __future__ import annotations

import csv
import re

import pytest
from sqlalchemy import text

from analysis_service.reasoners.llm_prompts import LEAD_IN, MAX_CAPTION_CHARS, shown
from tests.conftest import SHARED_DATA

LEFT_OUT = {
    "The image features a small bird on a branch.": "a small bird on a branch.",
    "The image depicts a busy street.": "a busy street.",
    "The image captures a lively beach scene.": "a lively beach scene.",
    "The image shows a man working on a car.": "a man working on a car.",
    "The image is a black and white photo of a ship.": "a black and white photo of a ship.",
    "In the image, a man is riding a horse.": "a man is riding a horse.",
    "This photo shows two dogs.": "two dogs.",
    "  THE IMAGE\nFEATURES a cat.": "a cat.",
}
KEPT = [
    "A dog on grass.",
    "The image showcases a sunset.",  # another verb: not a known lead-in
    "The images feature three dogs.",
    "Some say the image features a dog.",  # only at the start
    "The image",
    "The bird in the image features bright colors.",
]


def test_a_captions_lead_in_is_left_out_and_nothing_else():
    for caption, expected in LEFT_OUT.items():
        assert shown(caption) == expected
    for caption in KEPT:
        assert shown(caption) == caption
    # The cut to MAX_CAPTION_CHARS comes after the lead-in is gone.
    assert shown("The image features " + "x" * MAX_CAPTION_CHARS) == "x" * MAX_CAPTION_CHARS
    cut = shown("The image features " + "x" * (MAX_CAPTION_CHARS + 1))
    assert cut == "x" * (MAX_CAPTION_CHARS - 1) + "\u2026"


def _shared_captions() -> list[str]:
    captions = []
    for path in sorted(SHARED_DATA.glob("*/*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            captions += [row[2] for row in list(csv.reader(f))[1:]]
    return captions


async def test_postgres_reads_the_lead_in_as_python_does(sessionmaker):
    """The estimate's mean caption length comes from SQL (captioned_groups): the same pattern
    must match the same text there, or the estimate would count what is not sent."""
    captions = [*LEFT_OUT, *KEPT, *_shared_captions()]
    query = text(
        "SELECT c, length(regexp_replace(c, :lead_in, '', 'i')) FROM unnest(CAST(:cs AS text[])) c"
    )
    async with sessionmaker() as session:
        in_sql = dict((await session.execute(query, {"lead_in": LEAD_IN, "cs": captions})).all())
    python = re.compile(LEAD_IN, re.I)
    assert in_sql == {c: len(python.sub("", c)) for c in captions}
    assert sum(1 for c in captions if python.match(c)) >= len(LEFT_OUT)  # it is measured


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared captions not found")
def test_the_lead_in_is_most_of_what_starts_a_shared_caption():
    captions = _shared_captions()
    saved = sum(len(c) - len(shown(c)) for c in captions) / len(captions)
    assert saved > 15  # characters a caption, about 5 tokens
