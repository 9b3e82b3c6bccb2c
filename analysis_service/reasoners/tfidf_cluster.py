"""The offline reasoner: groups found in the statistics of the captions, no LLM, no word lists.

Organization mode (a criterion is given): captions become TF-IDF vectors (the baseline's
weighting: raw counts, smooth IDF), their lead sentence and the phrases that answer the
criterion weighted in (see cues.py), reduced by LSA (an SVD run to convergence, so that the
seed hardly moves it) to unit length and grouped by spherical k-means (kmeans.py) into exactly
K groups (K given) or the K of best silhouette, keeping of many restarts the one whose groups
are best separated (silhouette). The weights, the k-means kind and the restart rule are what
`make eval` picks (leave-one-set-out for its numbers, on all sets for these defaults). Each
group is named by its most distinctive terms (class-based TF-IDF, as BERTopic does) and every
caption goes to its nearest group centroid.

Per-class mode (no criterion): the class's main division (its captions in the same space split
by k-means, named by their distinctive terms, never by the class's own name), then groups of
mutually exclusive alternatives: words that appear in the same kinds of sentences but rarely in
the same caption (grass / snow / water). Every caption takes the alternative it names (the
first one, when it names several) and, when it names none, the alternative whose captions it is
most like (nearest centroid).

The fitted groups are kept in memory between propose and assign of the same job; a job resumed
in another process rebuilds them from the stored names and the captions being assigned.
Deterministic for a given seed and sample.
"""

from __future__ import annotations

import asyncio
import functools
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.preprocessing import normalize
from threadpoolctl import ThreadpoolController

from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, ImageAnswer
from analysis_service.reasoners.cues import Focus, lead
from analysis_service.reasoners.kmeans import (
    SILHOUETTE_SAMPLE,
    Algorithm,
    RestartChoice,
    best_restart,
    distances,
    silhouette,
    spherical_kmeans,
    unit,
)
from analysis_service.reasoners.names import MAX_NAME_CHARS

#: Words every caption of a captioner uses whatever the picture: never a group's name.
CAPTION_WORDS = frozenset(
    "image picture photo photograph scene shows showing depicts depicting features featuring "
    "appears visible overall possibly likely creating adding".split()
)
STOP_WORDS = sorted(ENGLISH_STOP_WORDS | CAPTION_WORDS | {OTHER})
NAME_JOIN = " / "
#: The per-class dimension of the class's main split (its groups are named by their terms).
MAIN_DIVISION = "main division"
#: Named when a group's terms cannot tell it apart from another group (rare: identical texts).
UNNAMED = "group"


@dataclass(frozen=True)
class ClusterSettings:
    """The method's parameters. `make eval` chooses the organization ones in its grid
    (lead_weight, focus_weight, algorithm, restart_choice, restarts) leave-one-set-out for its
    numbers; their defaults here are what the same rule chooses on all the evaluation sets, and
    `make eval` fails when they differ."""

    components: int = 100  # LSA dimensions
    #: Power iterations of the randomized SVD. At scikit-learn's default (5) the trailing LSA
    #: dimensions still depend on the seed, enough to move accuracy by 0.1 on a set of 700.
    svd_iterations: int = 20
    lead_weight: float = 0.25  # weight of the first sentence's terms
    focus_weight: float = 0.0  # weight of the terms that answer the criterion
    #: k-means restarts (organization): the more, the less which local optimum is kept
    #: depends on the seed.
    restarts: int = 30
    #: Which restart is kept: "inertia" (the tightest groups) or "silhouette" (the groups best
    #: separated from each other; both look at the vectors only, never at labels).
    restart_choice: RestartChoice = "silhouette"
    #: k-means on the unit LSA vectors: Euclidean (scikit-learn) or spherical (cosine, the
    #: similarity captions are assigned by).
    algorithm: Algorithm = "spherical"
    min_df: int = 1  # captions a term must occur in (organization)
    max_df: float = 1.0  # largest share of captions a term may occur in (organization)
    name_terms: int = 2  # terms in a group's name
    max_k: int = 12  # largest K tried when K is not given
    # Per-class mode.
    min_term_share: float = 0.03  # an alternative is named by at least this share of captions
    max_term_share: float = 0.6
    max_cooccurrence: float = 0.35  # captions naming both / expected if independent
    min_similarity: float = 0.2  # slot similarity an alternative needs to join a group
    max_alternatives: int = 8
    max_dimensions: int = 6
    min_coverage: float = 0.2  # share of captions that must name one of a group's alternatives
    split_groups: int = 2  # groups of the class's main split (k-means of its captions)
    split_restarts: int = 10  # k-means restarts of the main split


def _lower(captions: list[str]) -> list[str]:
    return [c.lower() for c in captions]


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


class _Space:
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
        if s.focus_weight and self.focus.active:
            focused = self.vectorizer.transform([self.focus.text(t) for t in texts])
            matrix = matrix + s.focus_weight * normalize(focused)
        return normalize(sp.csr_matrix(matrix))

    def embed(self, terms: sp.csr_matrix) -> np.ndarray:
        dense = self.svd.transform(terms) if self.svd is not None else terms.toarray()
        return normalize(dense)

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.embed(self.tfidf(texts))


def _choose_k(vectors: np.ndarray, seed: int, settings: ClusterSettings) -> int:
    """The K of best silhouette (on the unit vectors) between 2 and max_k."""
    n = len(np.unique(vectors.round(6), axis=0))
    sample = np.arange(len(vectors))
    if len(sample) > SILHOUETTE_SAMPLE:
        sample = np.random.RandomState(seed).choice(len(vectors), SILHOUETTE_SAMPLE, False)
    distance = distances(vectors[sample])
    best_k, best = 2, -2.0
    for k in range(2, min(settings.max_k, n - 1) + 1):
        labels = best_restart(vectors, k, seed, 3, algorithm=settings.algorithm).labels
        score = silhouette(distance, labels[sample], k)
        if score > best:
            best_k, best = k, score
    return best_k


def _distinctive(terms: sp.csr_matrix | np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
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


def _group_names(
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


@dataclass
class _Groups:
    """A fitted dimension: the space its captions live in and one unit centroid per attribute."""

    space: _Space | _ClassSpace
    centroids: np.ndarray
    #: Per-class alternatives: a caption that names one takes it; centroids only decide the rest.
    by_terms: bool = False
    #: Into the space the centroids live in (a class's main split: its LSA), when not the same.
    projection: np.ndarray | None = None

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        if self.projection is not None:
            vectors = unit(vectors @ self.projection)
        return np.asarray(np.argmax(vectors @ self.centroids.T, axis=1))


# ----------------------------------------------------------------------------- per-class
#
# A class holds ~100 captions and a dataset may hold thousands of classes, so this half works
# from one tokenization per caption with numpy alone: a scikit-learn estimator's fixed cost per
# call (validation, vocabulary building) would be most of the time at this size.

_ALL_WORDS = re.compile(r"[a-z]+")
_STOP = frozenset(STOP_WORDS)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager[object]:
    """BLAS and OpenMP (k-means) on one thread. A class's matrices are a few hundred rows, and
    a thread pool's hand-offs cost more than they save (per class: 2x slower on a busy 2-core
    machine); organizing 30,000 captions ran 1.4-1.9x faster on one thread there, and a worker
    runs jobs side by side, each in a thread of its own, which the pools would oversubscribe."""
    return _blas().limit(limits=1)


def _tokens(texts: list[str]) -> list[list[str]]:
    return [_ALL_WORDS.findall(text) for text in texts]


class _ClassSpace:
    """One class's caption vectors: TF-IDF of its content words (raw counts, smooth IDF, unit
    rows, as the organization space), dense: a class's vocabulary is small."""

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
        return self.embed(_tokens(texts))

    def embed(self, tokens: list[list[str]]) -> np.ndarray:
        return unit(self.counts(tokens) * self.idf)


def _alternative_groups(
    tokens: list[list[str]],
    space: _ClassSpace,
    settings: ClusterSettings,
    skip: frozenset[str] = frozenset(),
) -> list[list[str]]:
    """Groups of words (none in `skip`) that share contexts but rarely occur in the same
    caption."""
    n = len(tokens)
    present_all = space.counts(tokens) > 0
    df_all = present_all.sum(axis=0)
    low = max(2, int(np.ceil(settings.min_term_share * n)))
    high = settings.max_term_share * n if n >= 20 else n
    allowed = np.array([str(w) not in skip for w in space.vocabulary], dtype=bool)
    candidates = np.flatnonzero((df_all >= low) & (df_all <= high) & allowed)
    if len(candidates) < 2:
        return []
    vocabulary = space.vocabulary[candidates]
    present = present_all[:, candidates].astype(np.float64)
    df = df_all[candidates].astype(np.float64)
    together = present.T @ present
    expected = np.outer(df, df) / n
    exclusive = together / np.maximum(expected, 1e-12) <= settings.max_cooccurrence
    similarity = _slot_similarity(tokens, vocabulary)
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


def _slot_similarity(tokens: list[list[str]], vocabulary: np.ndarray) -> np.ndarray:
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


def subject_words(subject: str) -> frozenset[str]:
    """The words of a class's own name, singular and plural: every caption of the class says
    them, so they name none of its groups ("cat / bed" says no more than "bed")."""
    words = set(_ALL_WORDS.findall(subject.lower()))
    forms = {w[: -len(end)] for w in words for end in ("es", "s") if w.endswith(end)}
    return frozenset(words | forms | {f"{w}s" for w in words} | {f"{w}es" for w in words})


def _main_split(
    tokens: list[list[str]],
    space: _ClassSpace,
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
    weights = _distinctive(terms, labels, k)
    names = _group_names(weights, space.vocabulary, settings.name_terms, skip)
    return names, projection, centroids


def _dimension_name(alternatives: list[str], taken: set[str]) -> str:
    name = NAME_JOIN.join(alternatives[:3])
    return name if name not in taken else NAME_JOIN.join(alternatives)


def _first_named(texts: list[str], alternatives: list[str]) -> list[int | None]:
    """Per caption, the index of the alternative it names first, or None."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, alternatives)) + r")\b")
    position = {a: i for i, a in enumerate(alternatives)}
    found = []
    for text in texts:
        match = pattern.search(text)
        found.append(position[match.group(1)] if match else None)
    return found


def _centroids_of(
    vectors: np.ndarray, labels: list[int | None], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unit mean vector of each label's captions; and which labels had any."""
    member = np.zeros((k, len(labels)))
    for row, label in enumerate(labels):
        if label is not None:
            member[label, row] = 1.0
    centroids = member @ vectors
    present = np.linalg.norm(centroids, axis=1) > 0
    return unit(centroids), present


# ----------------------------------------------------------------------------- the reasoner


class TfidfClusterReasoner:
    name = "tfidf-cluster-v1"

    def __init__(self, settings: ClusterSettings | None = None):
        self.settings = settings or ClusterSettings()
        # Fitted dimensions by (subject, name, attributes), for assign after propose.
        self._fitted: dict[tuple[str, str, tuple[str, ...]], _Groups] = {}

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
        texts = _lower(captions)
        if not texts:
            return []
        with _one_thread():
            if goal.criterion:
                return self._organize(subject, goal.criterion, texts, seed, goal.num_attributes)
            return self._dimensions(subject, texts, seed)

    def _organize(
        self, subject: str, criterion: str, texts: list[str], seed: int, k: int | None
    ) -> list[DimensionProposal]:
        s = self.settings
        dimension = criterion.strip().lower()
        try:
            space = _Space(s, criterion, texts, seed)
        except ValueError:  # no word occurs in the captions: nothing to group by
            return [DimensionProposal(dimension, [UNNAMED])]
        terms = space.tfidf(texts)
        vectors = space.embed(terms)
        distinct = len(np.unique(vectors.round(6), axis=0))
        if k is None:
            k = _choose_k(vectors, seed, s) if distinct > 2 else distinct
        k = max(1, min(k, distinct))
        fitted = (
            best_restart(vectors, k, seed, s.restarts, s.restart_choice, s.algorithm)
            if k > 1
            else None
        )
        labels = fitted.labels if fitted is not None else np.zeros(len(texts), dtype=int)
        centroids = fitted.centroids if fitted is not None else vectors[:1]
        vocabulary = space.vectorizer.get_feature_names_out()
        names = _group_names(_distinctive(terms, labels, k), vocabulary, s.name_terms)
        self._fitted[(subject, dimension, tuple(names))] = _Groups(space, centroids)
        return [DimensionProposal(dimension, names)]

    def _dimensions(self, subject: str, texts: list[str], seed: int) -> list[DimensionProposal]:
        tokens = _tokens(texts)
        try:
            space = _ClassSpace(tokens)
        except ValueError:  # no word shared by two captions: nothing to divide them by
            return []
        proposals: list[DimensionProposal] = []
        taken: set[str] = set()
        skip = subject_words(subject)
        split = _main_split(tokens, space, self.settings, seed, skip)
        if split is not None:
            names, projection, centroids = split
            name = MAIN_DIVISION
            taken.add(name)
            proposals.append(DimensionProposal(name, names))
            key = (subject, name, tuple(names))
            self._fitted[key] = _Groups(space, centroids, projection=projection)
        vectors = space.embed(tokens)
        for alternatives in _alternative_groups(tokens, space, self.settings, skip):
            name = _dimension_name(alternatives, taken)
            taken.add(name)
            proposal = DimensionProposal(name, alternatives)
            proposals.append(proposal)
            named = _first_named(texts, alternatives)
            centroids, _ = _centroids_of(vectors, named, len(alternatives))
            self._fitted[(subject, name, tuple(alternatives))] = _Groups(
                space, centroids, by_terms=True
            )
        return proposals

    def assign_sync(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        texts = _lower(captions)
        answers = [ImageAnswer() for _ in texts]
        embedded: dict[int, np.ndarray] = {}  # dimensions of one class share their space
        with _one_thread():
            for dim in dimensions:
                chosen = self._assign_dimension(subject, dim, texts, embedded)
                for answer, value in zip(answers, chosen, strict=True):
                    answer.choose(dim.name, value, dim.attributes)
        return answers

    def _assign_dimension(
        self,
        subject: str,
        dim: DimensionProposal,
        texts: list[str],
        embedded: dict[int, np.ndarray],
    ) -> list[str]:
        if not texts or not dim.attributes:
            return [OTHER] * len(texts)
        if len(dim.attributes) == 1:
            return [dim.attributes[0]] * len(texts)
        groups = self._fitted.get((subject, dim.name, tuple(dim.attributes)))
        by_terms = groups.by_terms if groups is not None else _is_alternatives(dim)
        named: list[int | None] = (
            _first_named(texts, dim.attributes) if by_terms else [None] * len(texts)
        )
        if groups is None:
            groups = self._rebuild(dim, texts, named)
        if groups is None:
            return [dim.attributes[i] if i is not None else OTHER for i in named]
        space = groups.space
        if id(space) not in embedded:
            embedded[id(space)] = space.vectors(texts)
        nearest = groups.nearest(embedded[id(space)])
        return [
            dim.attributes[i if i is not None else int(j)]
            for i, j in zip(named, nearest, strict=True)
        ]

    def _rebuild(
        self, dim: DimensionProposal, texts: list[str], named: list[int | None]
    ) -> _Groups | None:
        """The dimension's centroids from the captions at hand, when its fit is not in memory
        (a job resumed in another process): the captions that name an attribute (or, in
        organization mode, are closest to its name's terms) seed its centroid, refined by a few
        nearest-centroid rounds."""
        try:
            space = _Space(self.settings, "", texts, 0, lsa=False)
        except ValueError:  # no word in these captions
            return None
        vectors = space.vectors(texts)
        k = len(dim.attributes)
        labels: list[int | None] = list(named)
        if all(i is None for i in named):
            queries = space.vectors([a.replace(NAME_JOIN, " ") for a in dim.attributes])
            labels = [int(i) for i in np.argmax(vectors @ queries.T, axis=1)]
        centroids, present = _centroids_of(vectors, labels, k)
        if not present.any():
            return None
        for _ in range(3):
            similarity = np.where(present, vectors @ centroids.T, -np.inf)
            refined, now = _centroids_of(
                vectors, [int(i) for i in np.argmax(similarity, axis=1)], k
            )
            centroids = np.where(now[:, None], refined, centroids)
        # An attribute no caption here is close to keeps a zero centroid: never the nearest.
        return _Groups(space, centroids, by_terms=any(i is not None for i in named))


def _is_alternatives(dim: DimensionProposal) -> bool:
    """Whether a stored dimension is a per-class group of alternatives (named after them)."""
    return all(NAME_JOIN not in a for a in dim.attributes) and dim.name in (
        _dimension_name(dim.attributes, set()),
        NAME_JOIN.join(dim.attributes),
    )
