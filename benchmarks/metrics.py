"""Retrieval quality on a labelled set.

Two shapes of evaluation share one scorer (:func:`retrieval_scores` on a similarity matrix):
leave-one-out (every image queries all the others) and query set vs collection (for
example icons drawn in one style looked up among the same icons in another style).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RetrievalScores:
    precision_at_1: float
    precision_at_6: float
    map_at_10: float


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def cosine_matrix(queries: np.ndarray, collection: np.ndarray) -> np.ndarray:
    """(n_queries, n_collection) cosine similarities."""
    return unit_rows(queries) @ unit_rows(collection).T


def top_k(similarity: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest similarities, best first."""
    k = min(k, similarity.shape[1])
    top = np.argpartition(-similarity, kth=k - 1, axis=1)[:, :k]
    order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def retrieval_scores(
    similarity: np.ndarray,
    query_labels: np.ndarray,
    collection_labels: np.ndarray,
    leave_one_out: bool = False,
) -> RetrievalScores:
    """P@1, P@6 and mAP@10 of ranking the collection by ``similarity`` for each query.

    ``leave_one_out``: queries are the collection itself (row i is column i), so each
    query's own entry is excluded. mAP@10 normalises by min(10, relevant items).
    """
    similarity = np.array(similarity, np.float32, copy=True)
    query_labels = np.asarray(query_labels)
    collection_labels = np.asarray(collection_labels)
    if leave_one_out:
        np.fill_diagonal(similarity, -np.inf)
    neighbours = top_k(similarity, 10)
    hits = collection_labels[neighbours] == query_labels[:, None]
    _, counts = np.unique(collection_labels, return_counts=True)
    per_label = dict(zip(np.unique(collection_labels), counts, strict=True))
    relevant = np.array([per_label.get(label, 0) for label in query_labels]) - leave_one_out
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denominator = np.maximum(np.minimum(relevant, hits.shape[1]), 1)
    return RetrievalScores(
        precision_at_1=float(hits[:, 0].mean()),
        precision_at_6=float(hits[:, :6].mean()),
        map_at_10=float(((precision_at_rank * hits).sum(axis=1) / denominator).mean()),
    )


def _leave_one_out(vectors: np.ndarray, labels: np.ndarray) -> RetrievalScores:
    return retrieval_scores(cosine_matrix(vectors, vectors), labels, labels, leave_one_out=True)


def precision_at_k(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean fraction of the k nearest other images that share the query's label (k: 1 or 6)."""
    scores = _leave_one_out(vectors, labels)
    return {1: scores.precision_at_1, 6: scores.precision_at_6}[k]


def mean_average_precision_at_k(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """mAP@k (k = 10): average precision over the top k, normalised by min(k, relevant)."""
    if k != 10:
        raise ValueError("mAP is computed at 10")
    return _leave_one_out(vectors, labels).map_at_10


def raw_pixel_vectors(images: list[np.ndarray]) -> np.ndarray:
    """Baseline: each image's pixels (already resized to one shape), flattened and centred."""
    flat = np.stack([np.asarray(image, np.float32).ravel() for image in images])
    return flat - flat.mean(axis=0, keepdims=True)
