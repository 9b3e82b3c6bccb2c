"""Per-class alternatives of the offline reasoner (tfidf_cluster): groups of words that fill
the same slot of a sentence but rarely occur in the same caption (grass / snow / water), each
group a dimension named after its words; a caption takes the alternative it says of the class
itself ("a dog sitting"), else the one it names first.

What is said right after the class's own name counts on its own: captions often describe other
people or animals with the same words ("a man standing next to a dog sitting"), so alternatives
of the class's own state (sitting / standing / lying) co-occur in captions while never being
said of the class together."""

from __future__ import annotations

import re

import numpy as np

from analysis_service.reasoners.base import DimensionProposal
from analysis_service.reasoners.kmeans import unit
from analysis_service.reasoners.tfidf_naming import NAME_JOIN
from analysis_service.reasoners.tfidf_settings import ClusterSettings
from analysis_service.reasoners.tfidf_space import WORD, ClassSpace

#: How many words after the class's own name are said of it: "a dog sitting", "the cat is
#: lying" (the verb of "X is V-ing").
SUBJECT_REACH = 2


def said_of_subject(tokens: list[list[str]], subject: frozenset[str]) -> list[list[str]]:
    """Per caption, in order, the words at most SUBJECT_REACH after a word of the class's own
    name."""
    said: list[list[str]] = []
    for words in tokens:
        if subject.isdisjoint(words):  # most captions of most classes: no loop in Python
            said.append([])
            continue
        after = {
            position
            for at, word in enumerate(words)
            if word in subject
            for position in range(at + 1, min(at + 1 + SUBJECT_REACH, len(words)))
        }
        said.append([words[position] for position in sorted(after)])
    return said


def said_in(texts: list[str], subject: frozenset[str]) -> list[list[str]]:
    """said_of_subject of untokenized captions; those that cannot name the class (no word of it
    inside) are not tokenized."""
    tokens = [WORD.findall(t) if any(w in t for w in subject) else [] for t in texts]
    return said_of_subject(tokens, subject)


def _exclusive(present: np.ndarray, df: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    """Which pairs of words occur together at most max_cooccurrence times as often as they
    would if independent."""
    together = present.T @ present
    expected = np.outer(df, df) / len(present)
    return np.asarray(together / np.maximum(expected, 1e-12) <= settings.max_cooccurrence)


def alternative_groups(
    tokens: list[list[str]],
    space: ClassSpace,
    settings: ClusterSettings,
    subject: frozenset[str] = frozenset(),
) -> list[list[str]]:
    """Groups of words (none of the class's own words, `subject`) that share contexts but
    rarely occur in the same caption, or, both often said of the class, rarely are so together.
    """
    n = len(tokens)
    present_all = space.counts(tokens) > 0
    df_all = present_all.sum(axis=0)
    low = max(2, int(np.ceil(settings.min_term_share * n)))
    high = settings.max_term_share * n if n >= 20 else n
    allowed = np.array([str(w) not in subject for w in space.vocabulary], dtype=bool)
    candidates = np.flatnonzero((df_all >= low) & (df_all <= high) & allowed)
    if len(candidates) < 2:
        return []
    vocabulary = space.vocabulary[candidates]
    present = present_all[:, candidates].astype(np.float64)
    df = df_all[candidates].astype(np.float64)
    said = (space.counts(said_of_subject(tokens, subject)) > 0)[:, candidates].astype(np.float64)
    said_df = said.sum(axis=0)
    often_said = said_df >= low
    exclusive = _exclusive(present, df, settings) | (
        _exclusive(said, said_df, settings) & np.outer(often_said, often_said)
    )
    similarity = slot_similarity(tokens, vocabulary)
    affinity = np.where(exclusive, similarity, 0.0)

    groups: list[list[int]] = []
    free = np.ones(len(vocabulary), dtype=bool)
    while True:
        masked = np.where(np.outer(free, free), affinity, 0.0)
        i, j = np.unravel_index(int(np.argmax(masked)), masked.shape)
        if masked[i, j] < settings.min_similarity:
            break
        group = [int(i), int(j)]
        free[group] = False
        while len(group) < settings.max_alternatives:
            fits = free & exclusive[group].all(axis=0)
            mean = np.where(fits, similarity[group].mean(axis=0), 0.0)
            best = int(np.argmax(mean))
            if mean[best] < settings.min_similarity:
                break
            group.append(best)
            free[best] = False
        groups.append(group)

    scored = []
    for group in groups:
        coverage = float(present[:, group].any(axis=1).mean())
        shares = df[group] / df[group].sum()
        balance = float(-(shares * np.log(shares)).sum() / np.log(len(group)))
        if coverage >= settings.min_coverage:
            order = sorted(group, key=lambda g: (-df[g], vocabulary[g]))
            scored.append((-coverage * balance, [str(vocabulary[g]) for g in order]))
    scored.sort()
    return [terms for _, terms in scored[: settings.max_dimensions]]


def slot_similarity(tokens: list[list[str]], vocabulary: np.ndarray) -> np.ndarray:
    """How alike the slots two words fill: cosine of their PPMI vectors over the words right
    before and after them ("on the grass", "on the couch"). Sentence-wide contexts would find
    topics instead (grass with field and running), not alternatives for one slot."""
    index = {str(w): i for i, w in enumerate(vocabulary)}
    contexts: dict[tuple[int, str], int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for words in tokens:
        last = len(words) - 1
        for position, token in enumerate(words):
            row = index.get(token)
            if row is None:
                continue
            for offset in (-2, -1, 1):
                at = position + offset
                if 0 <= at <= last:
                    rows.append(row)
                    cols.append(contexts.setdefault((offset, words[at]), len(contexts)))
    counts = np.zeros((len(vocabulary), max(len(contexts), 1)))
    np.add.at(counts, (np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)), 1.0)
    total = counts.sum()
    if total == 0:
        return np.zeros((len(vocabulary), len(vocabulary)))
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / total
    with np.errstate(divide="ignore"):
        pmi = np.log(np.where(counts > 0, counts, 1.0) / np.maximum(expected, 1e-300))
    ppmi = unit(np.where(counts > 0, np.maximum(pmi, 0.0), 0.0))
    similarity = ppmi @ ppmi.T
    np.fill_diagonal(similarity, 0)
    return similarity


def dimension_name(alternatives: list[str], taken: set[str]) -> str:
    name = NAME_JOIN.join(alternatives[:3])
    return name if name not in taken else NAME_JOIN.join(alternatives)


def is_alternatives(dim: DimensionProposal) -> bool:
    """Whether a stored dimension is a per-class group of alternatives (named after them)."""
    return all(NAME_JOIN not in a for a in dim.attributes) and dim.name in (
        dimension_name(dim.attributes, set()),
        NAME_JOIN.join(dim.attributes),
    )


def first_named(
    texts: list[str], alternatives: list[str], said: list[list[str]] | None = None
) -> list[int | None]:
    """Per caption, the index of the first alternative it says of the class (`said`: per
    caption, said_of_subject), else of the alternative it names first, or None."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, alternatives)) + r")\b")
    position = {a: i for i, a in enumerate(alternatives)}
    found: list[int | None] = []
    for row, text in enumerate(texts):
        if said and said[row]:
            of_subject = next((position[w] for w in said[row] if w in position), None)
            if of_subject is not None:
                found.append(of_subject)
                continue
        match = pattern.search(text)
        found.append(position[match.group(1)] if match else None)
    return found
