"""The offline reasoner: groups found in the statistics of the captions, no LLM, no word lists.

Organization mode (a criterion is given): captions become TF-IDF vectors (sublinear tf, words
and word pairs), their lead sentence and the phrases that answer the criterion weighted up (see
cues.py), reduced by LSA and grouped by spherical k-means with several restarts into exactly K
groups (K given) or the K of best silhouette. Each group is named by its most distinctive terms
(class-based TF-IDF, as BERTopic does) and every caption goes to its nearest group centroid.

Per-class mode (no criterion): a dimension is a group of mutually exclusive alternatives, words
that appear in the same kinds of sentences but rarely in the same caption (grass / snow /
water). Every caption takes the alternative it names (the first one, when it names several)
and, when it names none, the alternative whose captions it is most like (nearest centroid).

The fitted groups are kept in memory between propose and assign of the same job; a job resumed
in another process rebuilds them from the stored names and the captions being assigned.
Deterministic for a given seed and sample.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import normalize

from analysis_service.reasoners.base import OTHER, DimensionProposal, Goal, ImageAnswer
from analysis_service.reasoners.cues import Focus, lead
from analysis_service.reasoners.names import MAX_NAME_CHARS

#: Words of at least two letters (no digits or underscores first: stray tokens are not names).
TOKEN = r"(?u)\b[^\W\d_][^\W_]+\b"
#: Words every caption of a captioner uses whatever the picture: never a group's name.
CAPTION_WORDS = frozenset(
    "image picture photo photograph scene shows showing depicts depicting features featuring "
    "appears visible overall possibly likely creating adding".split()
)
STOP_WORDS = sorted(ENGLISH_STOP_WORDS | CAPTION_WORDS | {OTHER})
NAME_JOIN = " / "
#: Named when a group's terms cannot tell it apart from another group (rare: identical texts).
UNNAMED = "group"


@dataclass(frozen=True)
class ClusterSettings:
    """The method's parameters; `make eval` chooses the organization ones leave-one-set-out."""

    components: int = 50  # LSA dimensions
    lead_weight: float = 0.5  # weight of the first sentence's terms
    focus_weight: float = 0.5  # weight of the terms that answer the criterion
    restarts: int = 10  # k-means restarts; the best inertia is kept
    min_df: int = 2
    max_df: float = 0.5
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


def _lower(captions: list[str]) -> list[str]:
    return [c.lower() for c in captions]


def _tfidf(settings: ClusterSettings, n: int, pairs: bool = True) -> TfidfVectorizer:
    return TfidfVectorizer(
        token_pattern=TOKEN,
        stop_words=STOP_WORDS,
        sublinear_tf=True,
        ngram_range=(1, 2 if pairs else 1),
        min_df=settings.min_df if n >= 4 * settings.min_df else 1,
        max_df=settings.max_df if n >= 20 else 1.0,
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
        self.vectorizer = _tfidf(settings, len(texts), pairs=lsa)
        self.vectorizer.fit(texts)
        self.svd: TruncatedSVD | None = None
        if lsa:
            terms = self.tfidf(texts)
            rank = min(settings.components, terms.shape[1] - 1, terms.shape[0] - 1)
            if rank >= 2:
                # ARPACK: the exact truncated SVD, and faster here than the randomized one.
                self.svd = TruncatedSVD(rank, algorithm="arpack", random_state=seed).fit(terms)

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


def _kmeans(vectors: np.ndarray, k: int, seed: int, restarts: int) -> KMeans:
    return KMeans(k, n_init=restarts, random_state=seed).fit(vectors)


def _choose_k(vectors: np.ndarray, seed: int, settings: ClusterSettings) -> int:
    """The K of best silhouette (cosine, on the unit vectors) between 2 and max_k."""
    n = len(np.unique(vectors.round(6), axis=0))
    best_k, best = 2, -2.0
    for k in range(2, min(settings.max_k, n - 1) + 1):
        labels = _kmeans(vectors, k, seed, 3).labels_
        score = float(silhouette_score(vectors, labels, random_state=seed))
        if score > best:
            best_k, best = k, score
    return best_k


def _distinctive(terms: sp.csr_matrix, labels: np.ndarray, k: int) -> np.ndarray:
    """Class-based TF-IDF: each group's term weights, against how common the term is overall."""
    member = sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), (k, len(labels))
    )
    per_group = np.asarray((member @ terms).todense())
    tf = per_group / np.maximum(per_group.sum(axis=1, keepdims=True), 1e-12)
    frequency = per_group.sum(axis=0)
    idf = np.log(1 + per_group.sum() / k / np.maximum(frequency, 1e-12))
    return tf * idf


def _group_names(weights: np.ndarray, vocabulary: np.ndarray, n_terms: int) -> list[str]:
    """Each group's top terms, a term inside a chosen one skipped; unique across groups."""
    names: list[str] = []
    for row in weights:
        order = np.lexsort((vocabulary, -row))
        chosen: list[str] = []
        for index in order:
            if row[index] <= 0:
                break
            term = str(vocabulary[index])
            if any(term in c or c in term for c in chosen):
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

    space: _Space
    centroids: np.ndarray
    #: Per-class alternatives: a caption that names one takes it; centroids only decide the rest.
    by_terms: bool = False

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(np.argmax(vectors @ self.centroids.T, axis=1))


# ----------------------------------------------------------------------------- per-class


def _alternative_groups(texts: list[str], settings: ClusterSettings, seed: int) -> list[list[str]]:
    """Groups of words that share contexts but rarely occur in the same caption."""
    n = len(texts)
    words = CountVectorizer(
        token_pattern=TOKEN,
        stop_words=STOP_WORDS,
        binary=True,
        min_df=max(2, int(np.ceil(settings.min_term_share * n))),
        max_df=settings.max_term_share if n >= 20 else 1.0,
    )
    try:
        present = words.fit_transform(texts).tocsc().astype(np.float64)
    except ValueError:  # no word common enough
        return []
    vocabulary = words.get_feature_names_out()
    if len(vocabulary) < 2:
        return []
    df = np.asarray(present.sum(axis=0)).ravel()
    together = np.asarray((present.T @ present).todense())
    expected = np.outer(df, df) / n
    exclusive = together / np.maximum(expected, 1e-12) <= settings.max_cooccurrence
    similarity = _slot_similarity(texts, vocabulary)
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
        covered = present[:, group].sum(axis=1)
        coverage = float((np.asarray(covered).ravel() > 0).mean())
        shares = df[group] / df[group].sum()
        balance = float(-(shares * np.log(shares)).sum() / np.log(len(group)))
        if coverage >= settings.min_coverage:
            order = sorted(group, key=lambda g: (-df[g], vocabulary[g]))
            scored.append((-coverage * balance, [str(vocabulary[g]) for g in order]))
    scored.sort()
    return [terms for _, terms in scored[: settings.max_dimensions]]


_ALL_WORDS = re.compile(r"[a-z]+")


def _slot_similarity(texts: list[str], vocabulary: np.ndarray) -> np.ndarray:
    """How alike the slots two words fill: cosine of their PPMI vectors over the words right
    before and after them ("on the grass", "on the couch"). Sentence-wide contexts would find
    topics instead (grass with field and running), not alternatives for one slot."""
    index = {str(w): i for i, w in enumerate(vocabulary)}
    contexts: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for text in texts:
        tokens = _ALL_WORDS.findall(text)
        for position, token in enumerate(tokens):
            row = index.get(token)
            if row is None:
                continue
            for offset in (-2, -1, 1):
                at = position + offset
                if 0 <= at < len(tokens):
                    rows.append(row)
                    cols.append(contexts.setdefault(f"{offset}:{tokens[at]}", len(contexts)))
    counts = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(vocabulary), max(len(contexts), 1))
    )
    counts.sum_duplicates()
    total = counts.sum()
    if total == 0:
        return np.zeros((len(vocabulary), len(vocabulary)))
    row_sum = np.asarray(counts.sum(axis=1)).ravel()
    col_sum = np.asarray(counts.sum(axis=0)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * col_sum[coo.col]))
    ppmi = sp.csr_matrix((np.maximum(pmi, 0), (coo.row, coo.col)), shape=counts.shape)
    ppmi = normalize(ppmi)
    similarity = np.asarray((ppmi @ ppmi.T).todense())
    np.fill_diagonal(similarity, 0)
    return similarity


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
    centroids = np.zeros((k, vectors.shape[1]))
    for row, label in zip(vectors, labels, strict=True):
        if label is not None:
            centroids[label] += row
    present = np.linalg.norm(centroids, axis=1) > 0
    return normalize(centroids), present


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
        fitted = _kmeans(vectors, k, seed, s.restarts) if k > 1 else None
        labels = fitted.labels_ if fitted is not None else np.zeros(len(texts), dtype=int)
        centroids = normalize(fitted.cluster_centers_) if fitted is not None else vectors[:1]
        vocabulary = space.vectorizer.get_feature_names_out()
        names = _group_names(_distinctive(terms, labels, k), vocabulary, s.name_terms)
        self._fitted[(subject, dimension, tuple(names))] = _Groups(space, centroids)
        return [DimensionProposal(dimension, names)]

    def _dimensions(self, subject: str, texts: list[str], seed: int) -> list[DimensionProposal]:
        groups = _alternative_groups(texts, self.settings, seed)
        proposals: list[DimensionProposal] = []
        taken: set[str] = set()
        for alternatives in groups:
            name = _dimension_name(alternatives, taken)
            taken.add(name)
            proposals.append(DimensionProposal(name, alternatives))
        if proposals:
            space = _Space(self.settings, "", texts, seed, lsa=False)
            vectors = space.vectors(texts)
            for proposal in proposals:
                named = _first_named(texts, proposal.attributes)
                centroids, _ = _centroids_of(vectors, named, len(proposal.attributes))
                key = (subject, proposal.name, tuple(proposal.attributes))
                self._fitted[key] = _Groups(space, centroids, by_terms=True)
        return proposals

    def assign_sync(
        self, subject: str, dimensions: list[DimensionProposal], captions: list[str]
    ) -> list[ImageAnswer]:
        texts = _lower(captions)
        answers = [ImageAnswer() for _ in texts]
        embedded: dict[int, np.ndarray] = {}  # dimensions of one class share their space
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
