"""The offline reasoner's parameters (tfidf_cluster), one set for both of its modes."""

from __future__ import annotations

from dataclasses import dataclass

from analysis_service.reasoners.kmeans import Algorithm, RestartChoice


@dataclass(frozen=True)
class ClusterSettings:
    """The method's parameters. `make eval` chooses the organization ones in its grid
    (lead_weight, named_weight, facet_weight, algorithm, restart_choice) leave-one-set-out for its
    numbers; their defaults here are what the same rule chooses on all the evaluation sets, and
    `make eval` fails when they differ."""

    components: int = 100  # LSA dimensions
    #: Power iterations of the randomized SVD. At scikit-learn's default (5) the trailing LSA
    #: dimensions still depend on the seed, enough to move accuracy by 0.1 on a set of 700.
    svd_iterations: int = 20
    lead_weight: float = 0.25  # weight of the first sentence's terms
    named_weight: float = 0.0  # weight of the sentences that name the criterion
    facet_weight: float = 0.25  # weight of the phrases that answer the criterion's facet
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
