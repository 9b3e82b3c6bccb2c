"""Caption vectors of the offline reasoner (tfidf_cluster): the representation both modes
group in.

Organization: TF-IDF of the whole sample (the baseline's weighting: raw counts, smooth IDF),
the lead sentence and the phrases that answer the criterion weighted in (cues.py), reduced by
LSA to unit length. Per class: a class's own dense TF-IDF from one tokenization per caption.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.preprocessing import normalize

from analysis_service.reasoners.base import OTHER
from analysis_service.reasoners.cues import Focus, lead
from analysis_service.reasoners.kmeans import unit
from analysis_service.reasoners.tfidf_settings import ClusterSettings

#: Words every caption of a captioner uses whatever the picture: never a group's name.
CAPTION_WORDS = frozenset(
    "image picture photo photograph scene shows showing depicts depicting features featuring "
    "appears visible overall possibly likely creating adding".split()
)
STOP_WORDS = sorted(ENGLISH_STOP_WORDS | CAPTION_WORDS | {OTHER})
WORD = re.compile(r"[a-z]+")
_STOP = frozenset(STOP_WORDS)


def lowered(captions: list[str]) -> list[str]:
    return [c.lower() for c in captions]


def tokens_of(texts: list[str]) -> list[list[str]]:
    return [WORD.findall(text) for text in texts]


def _tfidf(settings: ClusterSettings, n: int) -> TfidfVectorizer:
    """Raw term counts, smooth IDF, unit rows: the baseline's weighting. Sublinear tf and word
    pairs were measured worse on the sets with a two-way split (a few generic words then decide
    it) and no better elsewhere. Document-frequency limits apply to samples large enough to
    have them."""
    large = n >= 20
    return TfidfVectorizer(
        stop_words=STOP_WORDS,
        min_df=settings.min_df if large else 1,
        max_df=settings.max_df if large else 1.0,
        dtype=np.float64,
    )


class CaptionSpace:
    """Caption vectors: focused TF-IDF, reduced by LSA (organization mode), unit length."""

    def __init__(
        self,
        settings: ClusterSettings,
        criterion: str,
        texts: list[str],
        seed: int,
        lsa: bool = True,
    ):
        self.settings = settings
        self.focus = Focus(criterion, texts)
        self.vectorizer = _tfidf(settings, len(texts))
        self.vectorizer.fit(texts)
        self.svd: TruncatedSVD | None = None
        if lsa:
            terms = self.tfidf(texts)
            rank = min(settings.components, terms.shape[1] - 1, terms.shape[0] - 1)
            if rank >= 2:
                self.svd = TruncatedSVD(
                    rank, n_iter=settings.svd_iterations, random_state=seed
                ).fit(terms)

    def tfidf(self, texts: list[str]) -> sp.csr_matrix:
        s = self.settings
        matrix = self.vectorizer.transform(texts)
        if s.lead_weight:
            matrix = matrix + s.lead_weight * normalize(self.vectorizer.transform(map(lead, texts)))
        # The two sources of focus (cues.py) weigh differently: sentences that name the
        # criterion are whole sentences, mostly about the main object; a facet's phrases are
        # only its answers ("in a kitchen", "riding a horse").
        if s.named_weight and self.focus.names_criterion:
            named = self.vectorizer.transform([self.focus.named_text(t) for t in texts])
            matrix = matrix + s.named_weight * normalize(named)
        if s.facet_weight and self.focus.facet is not None:
            phrases = self.vectorizer.transform([self.focus.facet_text(t) for t in texts])
            matrix = matrix + s.facet_weight * normalize(phrases)
        return normalize(sp.csr_matrix(matrix))

    def embed(self, terms: sp.csr_matrix) -> np.ndarray:
        dense = self.svd.transform(terms) if self.svd is not None else terms.toarray()
        return normalize(dense)

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.embed(self.tfidf(texts))


class ClassSpace:
    """One class's caption vectors: TF-IDF of its content words (raw counts, smooth IDF, unit
    rows, as the organization space), dense: a class's vocabulary is small.

    A class holds ~100 captions and a dataset may hold thousands of classes, so this works from
    one tokenization per caption with numpy alone: a scikit-learn estimator's fixed cost per
    call (validation, vocabulary building) would be most of the time at this size."""

    def __init__(self, tokens: list[list[str]]):
        df: dict[str, int] = {}
        for words in tokens:
            for word in set(words):
                if len(word) > 1 and word not in _STOP:
                    df[word] = df.get(word, 0) + 1
        floor = 2 if len(tokens) >= 8 else 1  # a word of one caption describes no group
        kept = sorted(w for w, count in df.items() if count >= floor)
        self.index = {w: i for i, w in enumerate(kept)}
        self.vocabulary = np.array(kept, dtype=object)
        counts = np.array([df[w] for w in kept], dtype=np.float64)
        self.idf = np.log((1 + len(tokens)) / (1 + counts)) + 1
        if not kept:
            raise ValueError("no word occurs in more than one caption")

    def counts(self, tokens: list[list[str]]) -> np.ndarray:
        index = self.index
        rows = [row for row, words in enumerate(tokens) for w in words if w in index]
        columns = [index[w] for words in tokens for w in words if w in index]
        flat = np.bincount(
            np.asarray(rows, dtype=np.intp) * len(index) + np.asarray(columns, dtype=np.intp),
            minlength=len(tokens) * len(index),
        )
        return flat.reshape(len(tokens), len(index)).astype(np.float64)

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.embed(tokens_of(texts))

    def embed(self, tokens: list[list[str]]) -> np.ndarray:
        return unit(self.counts(tokens) * self.idf)
