"""Shrunk PCA whitening of embedding vectors, learned without labels on a collection.

Pretrained CNN features share a few high-variance directions (background, overall
brightness, line weight) that dominate cosine similarity; whitening learned on the
collection rescales every principal direction to comparable variance so the rest of the
signal counts. Eigenvalues are shrunk towards their mean (``shrinkage`` x mean) so that
directions with almost no variance (few images, or fewer images than dimensions) are not
blown up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from service.embedders.base import l2_normalise


@dataclass(frozen=True)
class Whitening:
    """``apply(x) = unit((x - mean) @ matrix)``; ``matrix`` is (dim, dim), symmetric."""

    mean: np.ndarray
    matrix: np.ndarray

    @cached_property
    def _float32(self) -> tuple[np.ndarray, np.ndarray]:
        # Applied per search to the re-ranked candidates: float32 takes half the time.
        return self.mean.astype(np.float32), self.matrix.astype(np.float32)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) -> whitened unit rows (float32)."""
        mean, matrix = self._float32
        out = (np.asarray(vectors, np.float32) - mean) @ matrix
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    @cached_property
    def _squared(self) -> np.ndarray:
        # matrix @ matrix once, in float32: one product per query instead of two in float64
        return (self.matrix @ self.matrix).astype(np.float32)

    def query_sides(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, dim) -> the rows ``(q - mean) @ matrix @ matrix`` and each query's whitened
        length ``|(q - mean) @ matrix|`` (their inner product with ``q - mean``, square-rooted:
        no second product with the matrix).

        A side's cosine with a stored unit vector x ranks x by the whitened inner product
        ``(q - mean) W . (x - mean) W`` (the ``mean`` term is the same for every x), so a
        collection of plain vectors can be searched as if it were whitened, except that each
        stored vector keeps its own whitened length; :meth:`cosines` adds it.
        """
        mean, _ = self._float32
        centred = np.asarray(queries, np.float32) - mean
        sides = centred @ self._squared
        lengths = np.sqrt(np.maximum(np.einsum("ij,ij->i", centred, sides), 0.0))
        return sides, lengths

    def query_side(self, queries: np.ndarray) -> np.ndarray:
        """The unit rows of :meth:`query_sides`: what to search the plain vectors with."""
        return l2_normalise(self.query_sides(queries)[0])

    def cosines(self, stored: np.ndarray, sides: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(m, n) whitened cosines of ``stored`` vectors (m, dim) with the queries given as
        :meth:`query_sides` returns them: ``apply(stored) @ apply(queries).T`` with one
        product with the matrix (the stored side's) instead of two."""
        mean, matrix = self._float32
        centred = np.asarray(stored, np.float32) - mean
        stored_lengths = np.linalg.norm(centred @ matrix, axis=1)
        return (centred @ sides.T) / np.maximum(np.outer(stored_lengths, lengths), 1e-12)


def fit_whitening(vectors: np.ndarray, shrinkage: float) -> Whitening:
    """Learn the centring and shrunk PCA whitening of ``vectors`` ((n, dim), n >= 2)."""
    data = np.asarray(vectors, np.float64)
    if data.ndim != 2 or len(data) < 2:
        raise ValueError(f"whitening needs at least 2 vectors, got shape {data.shape}")
    mean = data.mean(axis=0)
    centred = data - mean
    covariance = centred.T @ centred / (len(data) - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    scale = 1.0 / np.sqrt(eigenvalues + shrinkage * eigenvalues.mean() + 1e-12)
    matrix = (eigenvectors * scale) @ eigenvectors.T
    return Whitening(mean=mean, matrix=matrix)
