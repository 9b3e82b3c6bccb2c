"""Per-class mode of the offline reasoner (tfidf_cluster): a class's dimensions found in its
own captions, no criterion given.

First the class's main division (its captions split by k-means, named by their distinctive
terms, never by the class's own name), then its groups of mutually exclusive alternatives
(tfidf_alternatives). Every caption takes the alternative it says of the class (else the
first it names) and, when it names none, the alternative whose captions it is most like
(nearest centroid).
"""

from __future__ import annotations

import numpy as np

from analysis_service.reasoners.base import DimensionProposal
from analysis_service.reasoners.kmeans import spherical_kmeans, unit
from analysis_service.reasoners.tfidf_alternatives import (
    alternative_groups,
    dimension_name,
    first_named,
    said_of_subject,
)
from analysis_service.reasoners.tfidf_groups import FittedGroups, centroids_of
from analysis_service.reasoners.tfidf_naming import distinctive, group_names, subject_words
from analysis_service.reasoners.tfidf_settings import ClusterSettings
from analysis_service.reasoners.tfidf_space import ClassSpace, tokens_of

#: The per-class dimension of the class's main split (its groups are named by their terms).
MAIN_DIVISION = "main division"


def main_split(
    tokens: list[list[str]],
    space: ClassSpace,
    settings: ClusterSettings,
    seed: int,
    skip: frozenset[str] = frozenset(),
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """The class's main division: its captions in the organization space (TF-IDF, LSA, unit
    length) grouped by spherical k-means, each group named by its distinctive terms (never the
    words in `skip`). Returns (names, projection to the LSA space, unit centroids there), or
    None when there is no division to make."""
    k = settings.split_groups
    terms = space.embed(tokens)
    if len(np.unique(terms.round(6), axis=0)) <= k:
        return None
    _, _, vt = np.linalg.svd(terms, full_matrices=False)
    projection = vt[: min(settings.components, len(vt))].T
    vectors = unit(terms @ projection)
    labels, centroids = spherical_kmeans(vectors, k, seed, settings.split_restarts)
    if len(set(labels.tolist())) < k:
        return None
    weights = distinctive(terms, labels, k)
    names = group_names(weights, space.vocabulary, settings.name_terms, skip)
    return names, projection, centroids


def class_dimensions(
    settings: ClusterSettings, subject: str, texts: list[str], seed: int
) -> list[tuple[DimensionProposal, FittedGroups]]:
    """The class's dimensions, each with the fit to assign its captions by."""
    tokens = tokens_of(texts)
    try:
        space = ClassSpace(tokens)
    except ValueError:  # no word shared by two captions: nothing to divide them by
        return []
    found: list[tuple[DimensionProposal, FittedGroups]] = []
    taken: set[str] = set()
    own = subject_words(subject)
    split = main_split(tokens, space, settings, seed, own)
    if split is not None:
        names, projection, centroids = split
        taken.add(MAIN_DIVISION)
        groups = FittedGroups(space, centroids, projection=projection)
        found.append((DimensionProposal(MAIN_DIVISION, names), groups))
    vectors = space.embed(tokens)
    said = said_of_subject(tokens, own)
    for alternatives in alternative_groups(tokens, space, settings, own):
        name = dimension_name(alternatives, taken)
        taken.add(name)
        named = first_named(texts, alternatives, said)
        centroids, _ = centroids_of(vectors, named, len(alternatives))
        groups = FittedGroups(space, centroids, by_terms=True)
        found.append((DimensionProposal(name, alternatives), groups))
    return found
