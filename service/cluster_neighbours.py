"""DBSCAN for large collections from Qdrant's (approximate) neighbour queries.

Exact DBSCAN (:mod:`service.clustering.dbscan`) compares every pair of points: its time
grows with the square of the collection (hours at a million). Here every point's
neighbourhood comes from one batched top-``K`` query through the vector index, keeping only
neighbours within eps (``min_score = 1 - eps``):

* a point is core when at least ``min_samples`` points (itself included) are within eps;
  with ``K >= min_samples`` that is decided exactly, up to the index's recall;
* core points are linked through the within-eps pairs found, borders join their most
  similar core neighbour: the same labelling as :func:`~service.clustering.dbscan.
  labels_from_edges` gives exact DBSCAN, from the ``K`` nearest pairs of each point
  instead of all of them (a dense cluster stays connected through its nearest pairs).

``--eps auto`` picks eps as the exact path does (:func:`~service.clustering.eps.
density_eps` on a random sample), with the sample's k-distances to the whole collection
taken from the same neighbour queries. Memory: the ids and ``K`` pairs per point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.clustering.dbscan import Edges, dbscan_within
from service.clustering.eps import density_eps, step_down
from service.clustering.results import (
    EpsChoice,
    Progress,
)
from service.clustering.vectors import unit_rows
from service.indexing import build_index
from service.store.base import PointFilter, VectorStore

# Neighbours asked per point: enough to keep dense clusters connected (measured, see
# docs/benchmarks-scale.md).
NEIGHBOURS_K = 16
PAGE = 512
_EPS_SAMPLE = 4_000


def _ids(store: VectorStore, where: PointFilter) -> list[str]:
    return [r.id for page in store.scroll(4096, where=where, with_payload=False) for r in page]


def _choose_eps(
    store: VectorStore, space: str, where: PointFilter, ids: list[str], min_samples: int
) -> EpsChoice:
    """:func:`density_eps` on a random sample, its k-distances from the store."""
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(ids), min(_EPS_SAMPLE, len(ids)), replace=False))
    records = store.retrieve([ids[i] for i in pick], with_vectors=[space])
    sample = unit_rows(np.stack([r.vectors[space] for r in records]))
    curve = np.empty(len(sample), np.float32)
    for start in range(0, len(sample), PAGE):
        part = sample[start : start + PAGE]
        for row, hits in enumerate(store.search_batch(list(part), space, min_samples, where)):
            kth = hits[min(min_samples, len(hits)) - 1].score if hits else 1.0
            curve[start + row] = np.clip(1.0 - kth, 0.0, 2.0)
    return density_eps(sample, min_samples, sample=len(sample), full_curve=curve)


def neighbour_edges(
    store: VectorStore, space: str, where: PointFilter, ids: list[str], eps: float,
    k: int, progress: Progress,
) -> Edges:
    """Within-eps pairs (point, neighbour) from one top-``k`` query per point."""
    position = {pid: i for i, pid in enumerate(ids)}
    edges = Edges()
    done = 0
    for page_ids, results in store.neighbour_pages(space, k, where, 1.0 - eps, PAGE):
        i, j, sim = [], [], []
        for point_id, hits in zip(page_ids, results, strict=True):
            me = position.get(point_id)
            if me is None:  # stored after the ids were read
                continue
            for hit in hits:
                other = position.get(hit.id)
                if other is not None and other != me:
                    i.append(me)
                    j.append(other)
                    sim.append(hit.score)
        edges.i.append(np.asarray(i, np.int32))
        edges.j.append(np.asarray(j, np.int32))
        edges.sim.append(np.asarray(sim, np.float32))
        edges.size += len(i)
        done += len(page_ids)
        progress("neighbours", min(done, len(ids)), len(ids))
    return _undirected(edges, len(ids))


def _undirected(edges: Edges, n: int) -> Edges:
    """Each pair once (``i < j``), however many of its two queries found it: DBSCAN counts
    a neighbour once."""
    i, j, sim = edges.arrays()
    low, high = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    _, first = np.unique(low * n + high, return_index=True)
    return Edges([low[first]], [high[first]], [sim[first]], int(first.size))


def dbscan_from_store(
    store: VectorStore,
    space: str,
    where: PointFilter,
    eps: float | str,
    min_samples: int,
    progress: Progress,
    on_eps: Callable[[EpsChoice], None] | None = None,
    k: int = NEIGHBOURS_K,
) -> tuple[list[str], np.ndarray, float, str | None]:
    """Ids, DBSCAN labels, the eps used and (for ``eps="auto"``) why.

    Builds the vector index first when it serves fewer than half of the points.
    """
    ids = _ids(store, where)
    if not ids:
        return [], np.zeros(0, np.int64), 0.0, None
    if store.indexed_vectors() < len(ids) // 2:
        progress("index", 0, 1)
        build_index(store, keep_serving=True)  # a running service keeps answering
        progress("index", 1, 1)
    k = max(k, min_samples)
    choice = _choose_eps(store, space, where, ids, min_samples) if eps == "auto" else None
    chosen = choice.eps if choice is not None else float(eps)
    if not 0 < chosen < 2:
        raise ValueError(f"eps must be in (0, 2) for cosine distance, got {chosen}")
    edges = neighbour_edges(store, space, where, ids, chosen, k, progress)
    n = len(ids)
    labels = dbscan_within(edges, n, chosen, min_samples)
    if choice is not None:
        labels, choice = step_down(
            labels, n, choice, lambda eps: dbscan_within(edges, n, eps, min_samples)
        )
        chosen = choice.eps
        if on_eps is not None:
            on_eps(choice)
    return ids, labels, chosen, choice.reason if choice is not None else None

