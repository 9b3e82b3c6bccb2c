"""Which words of a caption answer a criterion: the focusing step of the offline reasoner.

Whole-caption similarity mostly groups captions by their dominant object or scene; a criterion
says which part matters. Two general sources of focus, both read from the captions themselves:

- the sentences that name the criterion ("... playing a musical instrument, a cello"), when the
  captions name it often enough to be a signal;
- for a few general facets of a picture (where it is, what someone is doing, how it feels), the
  phrases that follow that facet's cue words in any caption: "in a kitchen", "riding a
  horse", "appears happy". These are grammatical patterns of descriptive English, not lists of
  answers: no place, action or mood word is listed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z]+")
_ARTICLE = r"(?:a|an|the|some|his|her|their|its)"
_PARTICLE = r"(?:on|at|in|into|onto|with|through|down|up|to|from|under|over|out|off)"
#: -ing words of English that are never a participle of an action.
_NOT_VERBS = r"(?:during|something|nothing|anything|everything|featuring|including|according)"

#: A criterion word that appears in fewer captions than this share says nothing by its sentences.
MIN_CRITERION_SHARE = 0.05


@dataclass(frozen=True)
class Facet:
    """A general facet of a picture: criterion words that name it and a pattern whose groups
    capture the phrase that answers it."""

    name: str
    criterion_words: frozenset[str]
    pattern: re.Pattern[str]


FACETS = (
    Facet(
        "place",
        frozenset(
            "location place places scene setting venue environment background where "
            "surroundings".split()
        ),
        re.compile(
            rf"\b(?:in|at|inside|on|near|outside|through|along)\s+{_ARTICLE}\s+"
            r"((?:[a-z]+\s)?[a-z]+)"
        ),
    ),
    Facet(
        "activity",
        frozenset("action actions activity activities doing pose sport task".split()),
        # A present participle and what it acts on: "(a man) riding a horse", "is looking
        # through a microscope". A participle after an article is a noun ("a building"), and
        # a few -ing words are never verbs; captions name the doer before the verb as often as
        # not, so no "is"/"are" is required.
        re.compile(
            rf"(?<!\ba )(?<!\ban )(?<!\bthe )\b(?!{_NOT_VERBS}\b)([a-z]{{2,}}ing)\b"
            rf"(?:\s+{_PARTICLE})?(?:\s+{_ARTICLE}\b)?(?:\s+([a-z]+))?"
        ),
    ),
    Facet(
        "mood",
        frozenset(
            "mood moods emotion emotions emotional feeling feelings sentiment atmosphere".split()
        ),
        re.compile(
            r"\b(?:appears?|seems?|looks?|feels?)\s+(?:to\s+be\s+)?(?:very\s+|quite\s+|rather\s+)?"
            r"([a-z]+)"
        ),
    ),
)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def criterion_words(criterion: str) -> list[str]:
    return [w for w in _WORD.findall(criterion.lower()) if len(w) > 2]


def facet_of(criterion: str) -> Facet | None:
    words = set(criterion_words(criterion))
    return next((f for f in FACETS if words & f.criterion_words), None)


class Focus:
    """The focused text of a caption for one criterion (lower-cased captions in, text out)."""

    def __init__(self, criterion: str, captions: list[str]):
        self.facet = facet_of(criterion)
        words = criterion_words(criterion)
        self._named = (
            re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")s?\b") if words else None
        )
        if self._named is not None and captions:
            share = sum(1 for c in captions if self._named.search(c)) / len(captions)
            if share < MIN_CRITERION_SHARE:
                self._named = None

    @property
    def names_criterion(self) -> bool:
        """Whether the captions name the criterion often enough for its sentences to count."""
        return self._named is not None

    def named_text(self, caption: str) -> str:
        """The sentences of a caption that name the criterion."""
        if self._named is None:
            return ""
        return " . ".join(s for s in sentences(caption) if self._named.search(s))

    def facet_text(self, caption: str) -> str:
        """The phrases of a caption that answer the criterion's facet."""
        if self.facet is None:
            return ""
        return " . ".join(
            " ".join(g for g in match.groups() if g)
            for match in self.facet.pattern.finditer(caption)
        )


def lead(caption: str) -> str:
    """The first sentence: captions open with what the picture is of."""
    found = sentences(caption)
    return found[0] if found else ""
