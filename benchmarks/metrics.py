"""Retrieval quality on a labelled set: every image queries all the others (leave-one-out)."""

from __future__ import annotations

import numpy as np


def _ranked_neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k most cosine-similar other rows, best first."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    top = np.argpartition(-similarity, kth=k - 1, axis=1)[:, :k]
    order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def precision_at_k(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean fraction of the k nearest other images that share the query's label."""
    neighbours = _ranked_neighbours(vectors, k)
    return float((labels[neighbours] == labels[:, None]).mean())


def mean_average_precision_at_k(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """mAP@k: average precision over the top k, normalised by min(k, relevant items)."""
    neighbours = _ranked_neighbours(vectors, k)
    hits = labels[neighbours] == labels[:, None]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    relevant = np.array([(labels == label).sum() - 1 for label in labels])
    denominator = np.maximum(np.minimum(relevant, k), 1)
    return float(((precision_at_rank * hits).sum(axis=1) / denominator).mean())


def raw_pixel_vectors(images: list[np.ndarray]) -> np.ndarray:
    """Baseline: each image's pixels (already resized to one shape), flattened and centred."""
    flat = np.stack([np.asarray(image, np.float32).ravel() for image in images])
    return flat - flat.mean(axis=0, keepdims=True)
