"""What clustering returns: labels (``-1`` noise, clusters ``0..k-1`` by size) and how
they were made, the eps chosen for ``--eps auto`` with its reason, and label helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NOISE = -1
# --eps auto rejects an eps whose largest cluster holds more than this share of the sample.
MAX_CLUSTER_SHARE = 0.5

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EpsChoice:
    """An eps picked from the data, and the reason, for the user."""

    eps: float
    reason: str
    k: int
    curve: np.ndarray = field(repr=False)  # sorted k-distances of the sample
    candidates: tuple[EpsCandidate, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class EpsCandidate:
    """One eps tried by :func:`density_eps` and how its DBSCAN labelling of the sample
    scored (shares are of the sampled points)."""

    quantile: float  # of the k-distance distribution: about the share of core points
    eps: float  # for the whole data: that quantile of the k-distances to all rows
    sample_eps: float  # the same quantile within the sample, used to cluster it
    clusters: int
    noise: float
    largest: float
    silhouette: float  # mean cosine silhouette of the clustered sample points
    score: float  # silhouette summed over the sample with noise scored 0, / sample size

    @property
    def acceptable(self) -> bool:
        """At least 2 clusters and none holding more than half of the sample."""
        return self.clusters >= 2 and self.largest <= MAX_CLUSTER_SHARE


@dataclass
class ClusteringResult:
    """Labels (``-1`` noise, clusters ``0..k-1`` by size) and how they were made."""

    labels: np.ndarray
    algorithm: str
    eps: float | None
    min_samples: int
    dims: int
    explained_variance: float | None
    eps_reason: str | None
    seconds: float
    # DBSCAN's neighbourhoods: "exact" (all pairs) or "index" (the vector index's queries)
    neighbours: str = "exact"

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def n_noise(self) -> int:
        return int((self.labels == NOISE).sum())

    def sizes(self) -> list[tuple[int, int]]:
        """(label, size) for every cluster, largest first; noise is left out."""
        return cluster_sizes(self.labels)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (no labels) for the run record and ``--json``."""
        return {
            "algorithm": self.algorithm,
            "eps": self.eps,
            "eps_reason": self.eps_reason,
            "min_samples": self.min_samples,
            "dims": self.dims,
            "explained_variance": self.explained_variance,
            "points": int(self.labels.size),
            "clusters": self.n_clusters,
            "noise": self.n_noise,
            "seconds": round(self.seconds, 3),
            "neighbours": self.neighbours,
        }


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters ``0..k-1`` by size (largest first, ties by old id); -1 stays."""
    labels = np.asarray(labels, np.int64)
    clustered = labels >= 0
    if not clustered.any():
        return np.full(labels.shape, NOISE, np.int64)
    old, sizes = np.unique(labels[clustered], return_counts=True)
    order = np.lexsort((old, -sizes))
    mapping = np.empty(old.size, np.int64)
    mapping[order] = np.arange(old.size)
    out = np.full(labels.shape, NOISE, np.int64)
    out[clustered] = mapping[np.searchsorted(old, labels[clustered])]
    return out


def cluster_sizes(labels: np.ndarray) -> list[tuple[int, int]]:
    """(label, size) per cluster, largest first; noise (-1) left out."""
    values, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = np.lexsort((values, -counts))
    return [(int(values[i]), int(counts[i])) for i in order]
