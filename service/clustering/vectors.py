"""Clustering a set of embeddings by cosine distance: the entry point.

Rows are unit-normalised (cosine distance is then ``1 - dot``), optionally reduced with
PCA, and labelled by DBSCAN (:mod:`.dbscan`, eps given or chosen by :mod:`.eps`) or
HDBSCAN. Pure numpy / scikit-learn / scipy: no store, no CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from service.clustering.dbscan import dbscan_cosine, hdbscan_labels
from service.clustering.eps import auto_dbscan
from service.clustering.results import NOISE, ClusteringResult, EpsChoice, Progress

ALGORITHMS = ("dbscan", "hdbscan")
# Reduce dimensions by default only when there is enough data for it to matter.
AUTO_DIMS = 128
AUTO_DIMS_MIN_POINTS = 20_000
_PCA_FIT_SAMPLE = 20_000


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 copy of ``vectors`` with every row scaled to unit length."""
    x = np.array(vectors, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.maximum(norms, 1e-12)
    return x


def reduce_dimensions(
    x: np.ndarray, dims: int, seed: int = 0, fit_sample: int = _PCA_FIT_SAMPLE
) -> tuple[np.ndarray, float]:
    """Project unit rows onto their top ``dims`` uncentred principal axes (fitted on a
    sample), renormalise; and the share of energy kept.

    Uncentred, so dot products (cosine similarities) are approximated rather than changed
    into similarities of centred data: an eps means the same with or without reduction.
    """
    rng = np.random.default_rng(seed)
    sample = x if len(x) <= fit_sample else x[rng.choice(len(x), fit_sample, replace=False)]
    gram = sample.T.astype(np.float64) @ sample
    values, axes = np.linalg.eigh(gram)  # ascending
    basis = np.ascontiguousarray(axes[:, ::-1][:, :dims], dtype=np.float32)
    kept = float(values[::-1][:dims].sum() / max(values.sum(), 1e-12))
    reduced = np.empty((len(x), dims), np.float32)
    step = 20_000
    for start in range(0, len(x), step):
        np.matmul(x[start : start + step], basis, out=reduced[start : start + step])
    return unit_rows(reduced), kept


def resolve_dims(dims: int | str | None, n: int, d: int) -> int | None:
    """Target dimension for PCA, or None to keep the vectors as they are.

    ``"auto"``: ``AUTO_DIMS`` when there are at least ``AUTO_DIMS_MIN_POINTS`` points,
    else none. An int >= the vector size means none.
    """
    if dims is None or dims == 0:
        return None
    if dims == "auto":
        return AUTO_DIMS if n >= AUTO_DIMS_MIN_POINTS and d > AUTO_DIMS else None
    target = int(dims)
    if target < 2:
        raise ValueError(f"dims must be at least 2, got {target}")
    return target if target < d and target < n else None


def cluster_vectors(
    vectors: np.ndarray,
    eps: float | str = "auto",
    min_samples: int = 5,
    algorithm: str = "dbscan",
    dims: int | str | None = "auto",
    progress: Progress | None = None,
    on_eps: Callable[[EpsChoice], None] | None = None,
) -> ClusteringResult:
    """Cluster ``vectors`` (n x d) by cosine distance.

    ``eps``: a cosine distance in (0, 2), or ``"auto"`` to choose one by clustering a
    sample at several radii (:func:`.eps.density_eps`; DBSCAN only). ``min_samples``: DBSCAN's,
    point itself included; for HDBSCAN also the minimum cluster size. ``dims``: PCA target,
    ``"auto"`` or None (see :func:`resolve_dims`).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    t0 = time.perf_counter()
    x = unit_rows(vectors)
    n, d = x.shape if x.ndim == 2 else (0, 0)
    explained = None
    target = resolve_dims(dims, n, d) if n else None
    if target is not None:
        x, explained = reduce_dimensions(x, target)
    chosen_eps: float | None = None
    reason: str | None = None
    if n == 0:
        labels = np.zeros(0, np.int64)
    elif algorithm == "hdbscan":
        labels = hdbscan_labels(x, min_samples, min_samples) if n > 1 else np.full(n, NOISE)
    else:
        if eps == "auto":
            labels, choice = auto_dbscan(x, min_samples, progress or (lambda *_: None))
            chosen_eps, reason = choice.eps, choice.reason
            if on_eps is not None:
                on_eps(choice)
        else:
            chosen_eps = float(eps)
            labels = dbscan_cosine(x, chosen_eps, min_samples, progress)
    return ClusteringResult(
        labels=labels,
        algorithm=algorithm,
        eps=chosen_eps,
        min_samples=min_samples,
        dims=x.shape[1] if x.ndim == 2 else 0,
        explained_variance=explained,
        eps_reason=reason,
        seconds=time.perf_counter() - t0,
    )
