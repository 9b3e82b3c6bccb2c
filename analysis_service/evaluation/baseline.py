"""The LLM-free baseline every offline result is compared with: TF-IDF of the captions, SVD to
100 dimensions, k-means with the same K (scikit-learn defaults otherwise)."""

from __future__ import annotations

from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

COMPONENTS = 100


def tfidf_kmeans(captions: list[str], k: int, seed: int) -> list[str]:
    """One cluster label per caption."""
    terms = TfidfVectorizer(stop_words="english").fit_transform(captions)
    rank = min(COMPONENTS, terms.shape[1] - 1, terms.shape[0] - 1)
    vectors = TruncatedSVD(rank, random_state=seed).fit_transform(terms)
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(vectors)
    return [str(label) for label in labels]
