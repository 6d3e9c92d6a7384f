"""Density clustering of embeddings with cosine distance: DBSCAN that scales, and HDBSCAN.

Pure numpy / scikit-learn / scipy: no store, no CLI. Vectors go in, labels come out
(``0..k-1`` numbered by cluster size, largest first; ``-1`` for noise).

Why not ``sklearn.cluster.DBSCAN(metric="cosine")``: it materialises every point's
neighbourhood at once, which for 100k points and a useful eps is tens of GB. Here:

1. rows are unit-normalised, so cosine distance is ``1 - dot`` and "within eps" is
   ``dot >= 1 - eps``;
2. optionally PCA (fitted on a sample) reduces the dimension, and rows are renormalised;
3. pass 1 counts each point's neighbours in row chunks over the upper triangle of the
   similarity matrix (each block is computed once and credited to both sides): this
   marks core points (``count >= min_samples``, the point itself included, as sklearn).
   It keeps the within-eps pairs while there are at most ``_MAX_EDGES`` of them;
4. pass 2 links core points that are within eps (connected components, scipy) and gives
   each non-core point the cluster of its most similar core point within eps (a border
   point), otherwise noise (-1). From the kept pairs when there are any; for denser data
   by comparing row chunks with the core points again.

Memory is O(n * d + chunk * n + min(pairs, _MAX_EDGES)). The partition of core points is
exactly DBSCAN's; border points that are within eps of two clusters go to the nearest core
point rather than to whichever cluster sklearn happens to expand first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ALGORITHMS = ("dbscan", "hdbscan")
NOISE = -1
# Reduce dimensions by default only when there is enough data for it to matter.
AUTO_DIMS = 128
AUTO_DIMS_MIN_POINTS = 20_000
_PCA_FIT_SAMPLE = 20_000
_EPS_SAMPLE = 4_000
# Candidate eps values for --eps auto: these quantiles of the k-distance distribution.
_EPS_QUANTILES = tuple(round(q, 2) for q in np.arange(0.05, 0.96, 0.05))
# --eps auto rejects an eps whose largest cluster holds more than this share of the sample.
_MAX_CLUSTER_SHARE = 0.5
# Re-runs with a smaller eps when the whole data chains beyond that share after all.
_MAX_STEPS_DOWN = 3
# Cells of float32 similarity per chunk (64M cells = 256 MB).
_CHUNK_CELLS = 64_000_000
# Within-eps pairs kept from pass 1 (12 bytes each); denser data recomputes in pass 2.
_MAX_EDGES = 40_000_000

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
        return self.clusters >= 2 and self.largest <= _MAX_CLUSTER_SHARE


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
        }


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


def _chunk_rows(columns: int) -> int:
    return int(max(64, min(4096, _CHUNK_CELLS // max(columns, 1))))


def _sample_rows(n: int, sample: int, seed: int) -> np.ndarray:
    """Sorted indices of ``min(sample, n)`` random rows (every row when n <= sample)."""
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def _kth_distances_of_rows(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Cosine distance from each of ``rows`` to its k-th nearest row of ``x`` (itself first)."""
    n = len(x)
    k = min(k, n)
    out = np.empty(len(rows), np.float32)
    step = _chunk_rows(n)
    for start in range(0, len(rows), step):
        sims = x[rows[start : start + step]] @ x.T
        kth = np.partition(sims, n - k, axis=1)[:, n - k]
        out[start : start + step] = 1.0 - kth
    return np.clip(out, 0.0, 2.0)


def kth_neighbour_distances(
    x: np.ndarray, k: int, sample: int = _EPS_SAMPLE, seed: int = 0
) -> np.ndarray:
    """Sorted cosine distance from each of ``sample`` random unit rows to its k-th
    nearest row, the row itself counted as the first (so k = min_samples matches DBSCAN)."""
    return np.sort(_kth_distances_of_rows(x, _sample_rows(len(x), sample, seed), k))


def knee_eps(x: np.ndarray, min_samples: int, sample: int = _EPS_SAMPLE) -> EpsChoice:
    """eps at the knee of the sorted k-distance curve (Kneedle: the point farthest below
    the chord from the first to the last point, both axes scaled to [0, 1])."""
    curve = kth_neighbour_distances(x, min_samples, sample)
    if len(curve) < 3 or curve[-1] <= curve[0]:
        eps = float(max(curve[-1] if len(curve) else 0.0, 1e-6))
        return EpsChoice(eps, "k-distance curve is flat: eps = its maximum", min_samples, curve)
    xs = np.linspace(0.0, 1.0, len(curve))
    ys = (curve - curve[0]) / (curve[-1] - curve[0])
    knee = int(np.argmax(xs - ys))
    eps = float(max(curve[knee], 1e-6))
    reason = (
        f"knee of the sorted {min_samples}-distance curve of {len(curve)} sampled points: "
        f"{100 * knee / (len(curve) - 1):.0f}% of points have their {min_samples}th neighbour "
        f"within cosine distance {eps:.4f} (range {curve[0]:.4f}..{curve[-1]:.4f})"
    )
    return EpsChoice(eps, reason, min_samples, curve)


@dataclass
class _Edges:
    """Pairs ``i < j`` within eps, with their similarity (kept while under a budget)."""

    i: list[np.ndarray] = field(default_factory=list)
    j: list[np.ndarray] = field(default_factory=list)
    sim: list[np.ndarray] = field(default_factory=list)
    size: int = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        return cat(self.i, np.int64), cat(self.j, np.int64), cat(self.sim, np.float32)


def _neighbour_counts(
    x: np.ndarray, threshold: np.float32, progress: Progress
) -> tuple[np.ndarray, _Edges | None]:
    """Pass 1 over the upper triangle, block by block: neighbour counts (self included),
    and every within-eps pair while there are at most ``_MAX_EDGES`` (else None)."""
    n = len(x)
    counts = np.ones(n, np.int64)  # itself
    edges: _Edges | None = _Edges()
    step = _chunk_rows(n)
    for start in range(0, n, step):
        stop = min(start + step, n)
        sims = x[start:stop] @ x[start:].T
        within = sims >= threshold
        within[:, : stop - start] &= np.triu(np.ones((stop - start,) * 2, bool), k=1)
        rows, cols = np.nonzero(within)
        counts += np.bincount(start + rows, minlength=n)
        counts += np.bincount(start + cols, minlength=n)
        if edges is not None:
            if edges.size + rows.size > _MAX_EDGES:
                edges = None  # too dense to keep: pass 2 recomputes similarities
            else:
                edges.i.append((start + rows).astype(np.int32))
                edges.j.append((start + cols).astype(np.int32))
                edges.sim.append(sims[rows, cols])
                edges.size += rows.size
        progress("neighbours", stop, n)
    return counts, edges


def _labels_from_edges(core: np.ndarray, edges: _Edges) -> np.ndarray:
    """Pass 2 without recomputing: components of core-core pairs, borders to the most
    similar core neighbour."""
    n = len(core)
    i, j, sim = edges.arrays()
    both = core[i] & core[j]
    graph = coo_matrix((np.ones(int(both.sum()), np.int8), (i[both], j[both])), shape=(n, n))
    _, components = connected_components(graph, directed=False)
    labels = np.where(core, components, NOISE).astype(np.int64)
    # Border candidates: (non-core point, core neighbour, similarity), from either side.
    one_way = core[j] & ~core[i]
    other_way = core[i] & ~core[j]
    point = np.concatenate([i[one_way], j[other_way]])
    neighbour = np.concatenate([j[one_way], i[other_way]])
    score = np.concatenate([sim[one_way], sim[other_way]])
    order = np.lexsort((-score, point))
    first = np.ones(order.size, bool)
    first[1:] = point[order][1:] != point[order][:-1]
    chosen = order[first]
    labels[point[chosen]] = components[neighbour[chosen]]
    return labels


def _merge(components: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component ids after linking core points ``a[i]`` and ``b[i]`` (core-index space)."""
    ca, cb = components[a], components[b]
    keep = ca != cb
    if not keep.any():
        return components
    m = len(components)
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (ca[keep], cb[keep])), shape=(m, m))
    _, merged = connected_components(graph, directed=False)
    return merged[components].astype(np.int64)


def _labels_by_recomputing(
    x: np.ndarray, core: np.ndarray, threshold: np.float32, progress: Progress
) -> np.ndarray:
    """Pass 2 for dense data: compare row chunks with the core points again."""
    n = len(x)
    core_idx = np.flatnonzero(core)
    labels = np.full(n, NOISE, np.int64)
    position = np.full(n, -1, np.int64)
    position[core_idx] = np.arange(core_idx.size)
    cores = np.ascontiguousarray(x[core_idx])
    components = np.arange(core_idx.size, dtype=np.int64)
    nearest_core = np.full(n, -1, np.int64)
    step = _chunk_rows(core_idx.size)
    for start in range(0, n, step):
        stop = min(start + step, n)
        sims = x[start:stop] @ cores.T
        is_core = core[start:stop]
        rows, cols = np.nonzero(sims[is_core] >= threshold)
        components = _merge(components, position[start:stop][is_core][rows], cols)
        border = ~is_core
        if border.any():
            best = np.argmax(sims[border], axis=1)
            near = sims[border][np.arange(best.size), best] >= threshold
            nearest_core[start:stop][np.flatnonzero(border)[near]] = best[near]
        progress("links", stop, n)
    labels[core_idx] = components
    has_core = nearest_core >= 0
    labels[has_core] = components[nearest_core[has_core]]
    return labels


def _dbscan(
    x: np.ndarray, eps: float, min_samples: int, progress: Progress
) -> tuple[np.ndarray, _Edges | None]:
    """DBSCAN labels, and the within-eps pairs when they were kept (else None)."""
    if not 0 < eps < 2:
        raise ValueError(f"eps must be in (0, 2) for cosine distance, got {eps}")
    threshold = np.float32(1.0 - eps)
    counts, edges = _neighbour_counts(x, threshold, progress)
    core = counts >= min_samples
    if not core.any():
        return np.full(len(x), NOISE, np.int64), edges
    if edges is not None:
        labels = _labels_from_edges(core, edges)
        progress("links", len(x), len(x))
    else:
        labels = _labels_by_recomputing(x, core, threshold, progress)
    return relabel_by_size(labels), edges


def dbscan_cosine(
    x: np.ndarray, eps: float, min_samples: int, progress: Progress | None = None
) -> np.ndarray:
    """DBSCAN labels for unit rows ``x`` with cosine distance, in bounded memory."""
    return _dbscan(x, eps, min_samples, progress or (lambda *_: None))[0]


def _dbscan_within(edges: _Edges, n: int, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels at ``eps`` from the pairs kept at a larger eps (no new arithmetic)."""
    i, j, sim = edges.arrays()
    keep = sim >= np.float32(1.0 - eps)
    smaller = _Edges([i[keep]], [j[keep]], [sim[keep]], int(keep.sum()))
    counts = 1 + np.bincount(i[keep], minlength=n) + np.bincount(j[keep], minlength=n)
    core = counts >= min_samples
    if not core.any():
        return np.full(n, NOISE, np.int64)
    return relabel_by_size(_labels_from_edges(core, smaller))


def _auto_dbscan(
    x: np.ndarray, min_samples: int, progress: Progress
) -> tuple[np.ndarray, EpsChoice]:
    """DBSCAN at the :func:`density_eps` choice. If on all points its largest cluster
    holds more than half of them (the sample can miss a chain), step down to the next
    acceptable candidate of smaller eps, by score, up to ``_MAX_STEPS_DOWN`` times."""
    choice = density_eps(x, min_samples)
    labels, edges = _dbscan(x, choice.eps, min_samples, progress)
    n = len(x)
    tried = choice.eps
    for _ in range(_MAX_STEPS_DOWN):
        biggest = max((size for _, size in cluster_sizes(labels)), default=0)
        lower = [c for c in choice.candidates if c.acceptable and c.score > 0 and c.eps < tried]
        if biggest <= _MAX_CLUSTER_SHARE * n or not lower:
            break
        best = max(lower, key=lambda c: c.score)
        note = (f"; on all points eps {tried:.4f} put {biggest / n:.0%} in one cluster, so "
                f"stepped down to the next best, the {best.quantile:.0%} quantile")
        choice = EpsChoice(best.eps, choice.reason + note, choice.k, choice.curve,
                           choice.candidates)
        tried = best.eps
        if edges is not None:
            labels = _dbscan_within(edges, n, best.eps, min_samples)
        else:
            labels, edges = _dbscan(x, best.eps, min_samples, progress)
    return labels, choice


def _sample_labels(sims: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (by size) of the rows behind the similarity matrix ``sims``."""
    within = sims >= np.float32(1.0 - eps)
    core = within.sum(axis=1) >= min_samples  # the diagonal counts the point itself
    if not core.any():
        return np.full(len(sims), NOISE, np.int64)
    i, j = np.nonzero(np.triu(within, k=1))
    edges = _Edges([i], [j], [sims[i, j]], int(i.size))
    return relabel_by_size(_labels_from_edges(core, edges))


def _silhouette_sum(sims: np.ndarray, labels: np.ndarray) -> float:
    """Sum of the cosine silhouettes of the clustered points (noise left out, a point
    alone in its cluster scores 0), from their similarity matrix."""
    clustered = np.flatnonzero(labels >= 0)
    order = clustered[np.argsort(labels[clustered], kind="stable")]
    own = labels[order]
    sizes = np.bincount(own)
    if sizes.size < 2:
        return 0.0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    distance = 1.0 - sims[np.ix_(order, order)].astype(np.float64)
    means = np.add.reduceat(distance, starts, axis=1)  # point x cluster: summed distances
    rows = np.arange(order.size)
    within = means[rows, own] / np.maximum(sizes[own] - 1, 1)
    means /= sizes
    means[rows, own] = np.inf
    nearest = means.min(axis=1)
    score = (nearest - within) / np.maximum(np.maximum(within, nearest), 1e-12)
    return float(np.where(sizes[own] > 1, score, 0.0).sum())


def density_eps(
    x: np.ndarray, min_samples: int, sample: int = _EPS_SAMPLE, seed: int = 0
) -> EpsChoice:
    """eps for DBSCAN chosen by clustering a random sample at several candidate radii.

    Candidates are quantiles q (5%..95%) of the k-distance distribution (k =
    min_samples): about a share q of the points are core points. Each candidate clusters
    the sample (its own q-quantile as eps) and is scored by the sample's mean cosine
    silhouette with noise points scoring 0, which penalises both everything-noise and
    clusters that are chained together. A candidate whose largest cluster holds more than
    half of the sample, or that finds fewer than 2 clusters, is rejected. The winner's q
    is applied to the k-distances to all rows (the share of core points carries over from
    the sample to the whole data; the radius does not). Falls back to :func:`knee_eps`
    when no candidate is acceptable. Exact (no sampling) up to ``sample`` points.
    """
    n = len(x)
    if min_samples < 2 or n < 2 * min_samples + 1:
        return knee_eps(x, min_samples, sample)
    rows = _sample_rows(n, sample, seed)
    part = np.ascontiguousarray(x[rows])
    sims = part @ part.T
    np.fill_diagonal(sims, 1.0)
    m = len(rows)
    sample_curve = np.sort(1.0 - np.partition(sims, m - min_samples, axis=1)[:, m - min_samples])
    curve = sample_curve if m == n else np.sort(_kth_distances_of_rows(x, rows, min_samples))
    candidates = []
    for q in _EPS_QUANTILES:
        sample_eps = float(np.clip(np.quantile(sample_curve, q), 1e-6, 1.999))
        labels = _sample_labels(sims, sample_eps, min_samples)
        clustered = labels >= 0
        sizes = np.bincount(labels[clustered]) if clustered.any() else np.zeros(1, np.int64)
        total = _silhouette_sum(sims, labels)
        candidates.append(EpsCandidate(
            quantile=q, eps=float(np.clip(np.quantile(curve, q), 1e-6, 1.999)),
            sample_eps=sample_eps, clusters=int(labels.max()) + 1,
            noise=1.0 - float(clustered.mean()), largest=float(sizes.max()) / m,
            silhouette=total / max(int(clustered.sum()), 1), score=total / m,
        ))
    acceptable = [c for c in candidates if c.acceptable and c.score > 0]
    if not acceptable:
        knee = knee_eps(x, min_samples, sample)
        reason = (f"no eps tried on {m} sampled points gave 2+ clusters with none over "
                  f"{_MAX_CLUSTER_SHARE:.0%} of them; fell back to the {knee.reason}")
        return EpsChoice(knee.eps, reason, min_samples, knee.curve, tuple(candidates))
    best = max(acceptable, key=lambda c: c.score)
    larger = [c for c in candidates if c.quantile > best.quantile and not c.acceptable]
    where = "all points" if m == n else f"{m} sampled points"
    reason = (
        f"best of {len(candidates)} eps values (5%..95% quantiles of the {min_samples}-distance) "
        f"tried on {where}: at the {best.quantile:.0%} quantile they form {best.clusters} "
        f"clusters, {best.noise:.0%} noise, largest {best.largest:.0%}, mean silhouette "
        f"{best.silhouette:.2f} (score {best.score:.3f} = silhouette x share clustered)"
    )
    if m < n:
        reason += (f"; eps {best.eps:.4f} is that quantile over all points "
                   f"({best.sample_eps:.4f} within the sample)")
    if larger:
        reason += (f"; from the {larger[0].quantile:.0%} quantile up one cluster holds "
                   f"{larger[0].largest:.0%}")
    return EpsChoice(best.eps, reason, min_samples, curve, tuple(candidates))


def hdbscan_labels(x: np.ndarray, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """scikit-learn HDBSCAN on unit rows with Euclidean distance, a monotone function of
    cosine distance (``|a-b|^2 = 2 - 2 cos``), so KD-trees apply. For varying density."""
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(min_cluster_size=max(2, min_cluster_size), min_samples=min_samples,
                    metric="euclidean", copy=False)
    return relabel_by_size(model.fit_predict(x).astype(np.int64))


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
    sample at several radii (:func:`density_eps`; DBSCAN only). ``min_samples``: DBSCAN's,
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
            labels, choice = _auto_dbscan(x, min_samples, progress or (lambda *_: None))
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
