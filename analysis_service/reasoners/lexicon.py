"""The offline reasoner: no LLM, only a vocabulary of visual facets and word statistics.

Proposal: every facet of the vocabulary is tried on a sample of the class's captions; a facet
becomes a dimension when at least two of its attributes are common and together they cover a
good part of the captions. When no facet qualifies, the most frequent distinctive words of the
captions form a 'keyword' dimension. Assignment: the earliest phrase of an allowed attribute
in the caption wins, else 'other'. Deterministic for a given sample.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, ImageAnswer, ranked
from analysis_service.reasoners.vocabulary import VOCABULARY, Facet

KEYWORD_DIMENSION = "keyword"
_WORD = re.compile(r"[a-z][a-z-]{2,}")
STOPWORDS = frozenset(
    """the and with its this that there are is was were has have had into onto from for
    image picture photo shows showing appears seems also which while some other their they them
    can could may might being been very more most such than then these those about above below
    near next over under between around behind front side part parts scene view overall
    """.split()
)


# Which facet of the vocabulary answers a user's criterion (organization mode).
CRITERION_FACETS = {
    "location": "place",
    "place": "place",
    "scene": "place",
    "venue": "place",
    "object": "object",
    "objects": "object",
    "object category": "object",
    "category": "object",
    "animal": "object",
    "vehicle": "object",
    "instrument": "instrument",
    "musical instrument": "instrument",
    "background": "background",
    "setting": "setting",
    "environment": "setting",
    "action": "pose",
    "activity": "pose",
    "pose": "pose",
    "color": "color",
    "colour": "color",
    "weather": "weather",
    "time": "time of day",
    "time of day": "time of day",
    "lighting": "brightness",
    "brightness": "brightness",
}


@dataclass(frozen=True)
class LexiconSettings:
    min_share: float = 0.03  # an attribute must describe at least this share of the sample
    min_count: int = 2
    min_coverage: float = 0.25  # the kept attributes must together cover this share
    max_attributes: int = 8
    max_dimensions: int = 6


def _entropy(counts: list[int]) -> float:
    total = sum(counts)
    probs = [c / total for c in counts if c]
    return -sum(p * math.log(p) for p in probs) / math.log(len(probs)) if len(probs) > 1 else 0.0


class LexiconReasoner:
    name = "lexicon-v1"

    def __init__(self, settings: LexiconSettings | None = None):
        self.settings = settings or LexiconSettings()
        self._facets = {f.name: f for f in VOCABULARY}

    def _keep(self, counts: Counter[str], n: int) -> list[str]:
        s = self.settings
        floor = max(s.min_count, math.ceil(s.min_share * n))
        return [a for a, c in ranked(counts, s.max_attributes) if c >= floor]

    def _score_facet(self, facet: Facet, texts: list[str]) -> tuple[float, list[str]]:
        counts = Counter(a for a in (facet.first(t) for t in texts) if a is not None)
        kept = self._keep(counts, len(texts))
        coverage = sum(counts[a] for a in kept) / len(texts)
        if len(kept) < 2 or coverage < self.settings.min_coverage:
            return 0.0, []
        return facet.weight * coverage * _entropy([counts[a] for a in kept]), kept

    def _keywords(self, texts: list[str]) -> list[str]:
        """Distinctive words: frequent, but not in nearly every caption."""
        df: Counter[str] = Counter()
        for text in texts:
            df.update({w for w in _WORD.findall(text) if w not in STOPWORDS})
        n = len(texts)
        candidates = Counter({w: c for w, c in df.items() if c <= 0.6 * n})
        return self._keep(candidates, n)

    async def propose(
        self, subject: str, captions: list[str], seed: int, goal: Goal | None = None
    ) -> list[DimensionProposal]:
        goal = goal or Goal()
        texts = [c.lower() for c in captions]
        if not texts:
            return []
        if goal.criterion:
            return [self._for_criterion(goal.criterion, texts, goal.num_attributes)]
        scored = [(self._score_facet(f, texts), f.name) for f in VOCABULARY]
        ranked = sorted((s for s in scored if s[0][0] > 0), key=lambda s: -s[0][0])
        proposals = [
            DimensionProposal(name, kept)
            for (_, kept), name in ranked[: self.settings.max_dimensions]
        ]
        if not proposals:
            keywords = self._keywords(texts)
            # With fewer than two distinctive words the captions cannot be split honestly.
            proposals = [DimensionProposal(KEYWORD_DIMENSION, keywords or ["described"])]
        return proposals

    def _facet_for(self, name: str) -> Facet | None:
        return self._facets.get(name) or self._facets.get(CRITERION_FACETS.get(name, ""))

    def _for_criterion(self, criterion: str, texts: list[str], k: int | None) -> DimensionProposal:
        """The facet that answers the criterion, else the criterion's most distinctive words."""
        name = criterion.strip().lower()
        facet = self._facet_for(name)
        if facet is not None:
            counts = Counter(a for a in (facet.most(t) for t in texts) if a is not None)
            attributes = [a for a, _ in ranked(counts, k)] if k else self._keep(counts, len(texts))
        else:
            attributes = self._keywords(texts)[:k] if k else self._keywords(texts)
        return DimensionProposal(name, attributes or ["described"])

    def _assign_one(self, text: str, dim: DimensionProposal) -> str:
        allowed = set(dim.attributes)
        facet = self._facet_for(dim.name)
        if facet is not None:
            return facet.most(text, allowed) or OTHER
        if dim.attributes == ["described"]:
            return "described"
        for word in _WORD.findall(text):
            if word in allowed:
                return word
        return OTHER

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        return [
            ImageAnswer({dim.name: self._assign_one(caption.lower(), dim) for dim in dimensions})
            for caption in captions
        ]
