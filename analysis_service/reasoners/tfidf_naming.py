"""Names of the offline reasoner's groups (tfidf_cluster): each group's most distinctive terms
(class-based TF-IDF, as BERTopic does), never the words every caption of its class says."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from analysis_service.reasoners.base import OTHER
from analysis_service.reasoners.names import MAX_NAME_CHARS
from analysis_service.reasoners.tfidf_space import WORD

NAME_JOIN = " / "
#: Named when a group's terms cannot tell it apart from another group (rare: identical texts).
UNNAMED = "group"


def distinctive(terms: sp.csr_matrix | np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Class-based TF-IDF: each group's term weights, against how common the term is overall."""
    member = sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), (k, len(labels))
    )
    summed = member @ terms
    per_group = summed.toarray() if sp.issparse(summed) else np.asarray(summed)
    tf = per_group / np.maximum(per_group.sum(axis=1, keepdims=True), 1e-12)
    frequency = per_group.sum(axis=0)
    idf = np.log(1 + per_group.sum() / k / np.maximum(frequency, 1e-12))
    return tf * idf


def group_names(
    weights: np.ndarray, vocabulary: np.ndarray, n_terms: int, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Each group's top terms, a term inside a chosen one (or in `skip`) skipped; unique across
    groups."""
    names: list[str] = []
    for row in weights:
        order = np.lexsort((vocabulary, -row))
        chosen: list[str] = []
        for index in order:
            if row[index] <= 0:
                break
            term = str(vocabulary[index])
            if term in skip or any(term in c or c in term for c in chosen):
                continue
            candidate = NAME_JOIN.join([*chosen, term])
            if len(candidate) > MAX_NAME_CHARS:
                break
            chosen.append(term)
            name = NAME_JOIN.join(chosen)
            if len(chosen) >= n_terms and name not in names:
                break
        name = NAME_JOIN.join(chosen) or UNNAMED
        base, suffix = name, 2
        while name in names or name == OTHER:
            name, suffix = f"{base} {suffix}", suffix + 1
        names.append(name)
    return names


def subject_words(subject: str) -> frozenset[str]:
    """The words of a class's own name, singular and plural: every caption of the class says
    them, so they name none of its groups ("cat / bed" says no more than "bed")."""
    words = set(WORD.findall(subject.lower()))
    forms = {w[: -len(end)] for w in words for end in ("es", "s") if w.endswith(end)}
    return frozenset(words | forms | {f"{w}s" for w in words} | {f"{w}es" for w in words})
