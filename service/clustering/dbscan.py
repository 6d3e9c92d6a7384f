"""DBSCAN with cosine distance that scales, and HDBSCAN, on unit rows.

Why not ``sklearn.cluster.DBSCAN(metric="cosine")``: it materialises every point's
neighbourhood at once, which for 100k points and a useful eps is tens of GB. Here:

1. rows come unit-normalised (and maybe PCA-reduced, :mod:`.vectors`), so cosine
   distance is ``1 - dot`` and "within eps" is ``dot >= 1 - eps``;
2. pass 1 counts each point's neighbours in row chunks over the upper triangle of the
   similarity matrix (each block is computed once and credited to both sides): this
   marks core points (``count >= min_samples``, the point itself included, as sklearn).
   It keeps the within-eps pairs while there are at most ``_MAX_EDGES`` of them;
3. pass 2 links core points that are within eps (connected components, scipy) and gives
   each non-core point the cluster of its most similar core point within eps (a border
   point), otherwise noise (-1). From the kept pairs when there are any; for denser data
   by comparing row chunks with the core points again.

Memory is O(n * d + chunk * n + min(pairs, _MAX_EDGES)). The partition of core points is
exactly DBSCAN's; border points that are within eps of two clusters go to the nearest core
point rather than to whichever cluster sklearn happens to expand first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from service.clustering.results import NOISE, Progress, relabel_by_size

# Cells of float32 similarity per chunk (64M cells = 256 MB).
_CHUNK_CELLS = 64_000_000
# Within-eps pairs kept from pass 1 (12 bytes each); denser data recomputes in pass 2.
_MAX_EDGES = 40_000_000


def chunk_rows(columns: int) -> int:
    return int(max(64, min(4096, _CHUNK_CELLS // max(columns, 1))))


@dataclass
class Edges:
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
) -> tuple[np.ndarray, Edges | None]:
    """Pass 1 over the upper triangle, block by block: neighbour counts (self included),
    and every within-eps pair while there are at most ``_MAX_EDGES`` (else None)."""
    n = len(x)
    counts = np.ones(n, np.int64)  # itself
    edges: Edges | None = Edges()
    step = chunk_rows(n)
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


def labels_from_edges(core: np.ndarray, edges: Edges) -> np.ndarray:
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
    step = chunk_rows(core_idx.size)
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


def dbscan_with_edges(
    x: np.ndarray, eps: float, min_samples: int, progress: Progress
) -> tuple[np.ndarray, Edges | None]:
    """DBSCAN labels, and the within-eps pairs when they were kept (else None)."""
    if not 0 < eps < 2:
        raise ValueError(f"eps must be in (0, 2) for cosine distance, got {eps}")
    threshold = np.float32(1.0 - eps)
    counts, edges = _neighbour_counts(x, threshold, progress)
    core = counts >= min_samples
    if not core.any():
        return np.full(len(x), NOISE, np.int64), edges
    if edges is not None:
        labels = labels_from_edges(core, edges)
        progress("links", len(x), len(x))
    else:
        labels = _labels_by_recomputing(x, core, threshold, progress)
    return relabel_by_size(labels), edges


def dbscan_cosine(
    x: np.ndarray, eps: float, min_samples: int, progress: Progress | None = None
) -> np.ndarray:
    """DBSCAN labels for unit rows ``x`` with cosine distance, in bounded memory."""
    return dbscan_with_edges(x, eps, min_samples, progress or (lambda *_: None))[0]


def dbscan_within(edges: Edges, n: int, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels at ``eps`` from the pairs kept at a larger eps (no new arithmetic)."""
    i, j, sim = edges.arrays()
    keep = sim >= np.float32(1.0 - eps)
    smaller = Edges([i[keep]], [j[keep]], [sim[keep]], int(keep.sum()))
    counts = 1 + np.bincount(i[keep], minlength=n) + np.bincount(j[keep], minlength=n)
    core = counts >= min_samples
    if not core.any():
        return np.full(n, NOISE, np.int64)
    return relabel_by_size(labels_from_edges(core, smaller))


def hdbscan_labels(x: np.ndarray, min_cluster_size: int, min_samples: int) -> np.ndarray:
    """scikit-learn HDBSCAN on unit rows with Euclidean distance, a monotone function of
    cosine distance (``|a-b|^2 = 2 - 2 cos``), so KD-trees apply. For varying density."""
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(min_cluster_size=max(2, min_cluster_size), min_samples=min_samples,
                    metric="euclidean", copy=False)
    return relabel_by_size(model.fit_predict(x).astype(np.int64))
