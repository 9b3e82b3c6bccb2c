"""The offline reasoner: groups found in the statistics of the captions, no LLM, no word lists.

Organization mode (a criterion is given, tfidf_organization): captions become TF-IDF vectors
(the baseline's weighting: raw counts, smooth IDF), their lead sentence and the phrases that
answer the criterion weighted in (see cues.py), reduced by LSA (an SVD run to convergence, so
that the seed hardly moves it) to unit length (tfidf_space) and grouped by spherical k-means
(kmeans.py) into exactly K groups (K given) or the K of best silhouette, keeping of many
restarts the one whose groups are best separated (silhouette). The weights, the k-means kind
and the restart rule are what `make eval` picks (leave-one-set-out for its numbers, on all sets
for the defaults in tfidf_settings). Each group is named by its most distinctive terms
(class-based TF-IDF, as BERTopic does: tfidf_naming) and every caption goes to its nearest
group centroid.

Per-class mode (no criterion, tfidf_per_class): the class's main division (its captions in the
same space split by k-means, named by their distinctive terms, never by the class's own name),
then groups of mutually exclusive alternatives (tfidf_alternatives): words that appear in the
same kinds of sentences but rarely in the same caption, or rarely said of the class together
(grass / snow / water; sitting / standing / lying). Every caption takes the alternative it says
of the class (else the first it names) and, when it names none, the alternative whose captions
it is most like (nearest centroid).

The fitted groups are kept in memory between propose and assign of the same job; a job resumed
in another process rebuilds them from the stored names and the captions being assigned
(tfidf_groups). Deterministic for a given seed and sample.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import AbstractContextManager
from dataclasses import replace

import numpy as np
from threadpoolctl import ThreadpoolController

from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, ImageAnswer
from analysis_service.reasoners.tfidf_alternatives import (
    first_named,
    is_alternatives,
    said_in,
)
from analysis_service.reasoners.tfidf_groups import FittedGroups, rebuild
from analysis_service.reasoners.tfidf_naming import subject_words
from analysis_service.reasoners.tfidf_organization import organize
from analysis_service.reasoners.tfidf_per_class import class_dimensions
from analysis_service.reasoners.tfidf_settings import ClusterSettings
from analysis_service.reasoners.tfidf_space import lowered


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[object]:
    """BLAS and OpenMP (k-means) on one thread. A class's matrices are a few hundred rows, and
    a thread pool's hand-offs cost more than they save (per class: 2x slower on a busy 2-core
    machine); organizing 30,000 captions ran 1.4-1.9x faster on one thread there, and a worker
    runs jobs side by side, each in a thread of its own, which the pools would oversubscribe."""
    return _blas().limit(limits=1)


class _Captions:
    """Captions being assigned, with what the dimensions of their class read from them once."""

    def __init__(self, subject: str, texts: list[str]):
        self.subject = subject
        self.texts = texts
        #: Vectors by the id of the space they are in: dimensions of one class share it.
        self.embedded: dict[int, np.ndarray] = {}

    @functools.cached_property
    def said(self) -> list[list[str]]:
        return said_in(self.texts, subject_words(self.subject))


class TfidfClusterReasoner:
    name = "tfidf-cluster-v1"

    def __init__(self, settings: ClusterSettings | None = None):
        self.settings = settings or ClusterSettings()
        # Fitted dimensions by (subject, name, attributes), for assign after propose.
        self._fitted: dict[tuple[str, str, tuple[str, ...]], FittedGroups] = {}

    def with_settings(self, **changes: object) -> TfidfClusterReasoner:
        return TfidfClusterReasoner(replace(self.settings, **changes))  # type: ignore[arg-type]

    async def propose(
        self, subject: str, captions: list[str], seed: int, goal: Goal | None = None
    ) -> list[DimensionProposal]:
        return await asyncio.to_thread(self.propose_sync, subject, captions, seed, goal)

    async def assign(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        return await asyncio.to_thread(self.assign_sync, subject, dimensions, captions)

    # The work itself, off the event loop.

    def propose_sync(
        self, subject: str, captions: list[str], seed: int, goal: Goal | None = None
    ) -> list[DimensionProposal]:
        goal = goal or Goal()
        texts = lowered(captions)
        if not texts:
            return []
        with _one_thread():
            found: list[tuple[DimensionProposal, FittedGroups | None]]
            if goal.criterion:
                k = goal.num_attributes
                found = [organize(self.settings, goal.criterion, texts, seed, k)]
            else:
                found = list(class_dimensions(self.settings, subject, texts, seed))
        for proposal, fitted in found:
            if fitted is not None:
                self._fitted[(subject, proposal.name, tuple(proposal.attributes))] = fitted
        return [proposal for proposal, _ in found]

    def assign_sync(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        texts = _Captions(subject, lowered(captions))
        answers = [ImageAnswer() for _ in texts.texts]
        with _one_thread():
            for dim in dimensions:
                chosen = self._assign_dimension(subject, dim, texts)
                for answer, value in zip(answers, chosen, strict=True):
                    answer.choose(dim.name, value, dim.attributes)
        return answers

    def _assign_dimension(
        self, subject: str, dim: DimensionProposal, captions: _Captions
    ) -> list[str]:
        texts = captions.texts
        if not texts or not dim.attributes:
            return [OTHER] * len(texts)
        if len(dim.attributes) == 1:
            return [dim.attributes[0]] * len(texts)
        groups = self._fitted.get((subject, dim.name, tuple(dim.attributes)))
        by_terms = groups.by_terms if groups is not None else is_alternatives(dim)
        named: list[int | None] = (
            first_named(texts, dim.attributes, captions.said) if by_terms else [None] * len(texts)
        )
        if groups is None:
            groups = rebuild(self.settings, dim, texts, named)
        if groups is None:
            return [dim.attributes[i] if i is not None else OTHER for i in named]
        space = groups.space
        if id(space) not in captions.embedded:
            captions.embedded[id(space)] = space.vectors(texts)
        nearest = groups.nearest(captions.embedded[id(space)])
        return [
            dim.attributes[i if i is not None else int(j)]
            for i, j in zip(named, nearest, strict=True)
        ]
