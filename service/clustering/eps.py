"""Choosing DBSCAN's eps from the data (``--eps auto``): candidate radii tried on a sample,
scored by silhouette; the knee of the k-distance curve as the fallback."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.clustering.dbscan import (
    Edges,
    chunk_rows,
    dbscan_with_edges,
    dbscan_within,
    labels_from_edges,
)
from service.clustering.results import (
    MAX_CLUSTER_SHARE,
    NOISE,
    EpsCandidate,
    EpsChoice,
    Progress,
    cluster_sizes,
    relabel_by_size,
)

_EPS_SAMPLE = 4_000
# Candidate eps values for --eps auto: these quantiles of the k-distance distribution.
_EPS_QUANTILES = tuple(round(q, 2) for q in np.arange(0.05, 0.96, 0.05))
# Re-runs with a smaller eps when the whole data chains beyond that share after all.
_MAX_STEPS_DOWN = 3


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
    step = chunk_rows(n)
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


def auto_dbscan(
    x: np.ndarray, min_samples: int, progress: Progress
) -> tuple[np.ndarray, EpsChoice]:
    """DBSCAN at the :func:`density_eps` choice, stepped down as :func:`step_down` says."""
    choice = density_eps(x, min_samples)
    labels, edges = dbscan_with_edges(x, choice.eps, min_samples, progress)

    def relabel(eps: float) -> np.ndarray:
        nonlocal edges
        if edges is not None:
            return dbscan_within(edges, len(x), eps, min_samples)
        again, edges = dbscan_with_edges(x, eps, min_samples, progress)
        return again

    return step_down(labels, len(x), choice, relabel)


def step_down(
    labels: np.ndarray, n: int, choice: EpsChoice, relabel: Callable[[float], np.ndarray]
) -> tuple[np.ndarray, EpsChoice]:
    """If the largest cluster of the ``n`` points holds more than half of them (the sample
    the eps came from can miss a chain), step down to the next acceptable candidate of
    smaller eps, by score, up to ``_MAX_STEPS_DOWN`` times; ``relabel(eps)`` labels every
    point at that eps."""
    tried = choice.eps
    for _ in range(_MAX_STEPS_DOWN):
        biggest = max((size for _, size in cluster_sizes(labels)), default=0)
        lower = [c for c in choice.candidates if c.acceptable and c.score > 0 and c.eps < tried]
        if biggest <= MAX_CLUSTER_SHARE * n or not lower:
            break
        best = max(lower, key=lambda c: c.score)
        note = (f"; on all points eps {tried:.4f} put {biggest / n:.0%} in one cluster, so "
                f"stepped down to the next best, the {best.quantile:.0%} quantile")
        choice = EpsChoice(best.eps, choice.reason + note, choice.k, choice.curve,
                           choice.candidates)
        tried = best.eps
        labels = relabel(best.eps)
    return labels, choice


def _sample_labels(sims: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (by size) of the rows behind the similarity matrix ``sims``."""
    within = sims >= np.float32(1.0 - eps)
    core = within.sum(axis=1) >= min_samples  # the diagonal counts the point itself
    if not core.any():
        return np.full(len(sims), NOISE, np.int64)
    i, j = np.nonzero(np.triu(within, k=1))
    edges = Edges([i], [j], [sims[i, j]], int(i.size))
    return relabel_by_size(labels_from_edges(core, edges))


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
    x: np.ndarray, min_samples: int, sample: int = _EPS_SAMPLE, seed: int = 0,
    full_curve: np.ndarray | None = None,
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

    ``full_curve``: when ``x`` is itself a sample of a larger collection, the sorted
    k-distances of its rows to every point (e.g. from the store's neighbour queries).
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
    if full_curve is not None:
        curve = np.sort(full_curve)
    elif m == n:
        curve = sample_curve
    else:
        curve = np.sort(_kth_distances_of_rows(x, rows, min_samples))
    sampled = m < n or full_curve is not None
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
                  f"{MAX_CLUSTER_SHARE:.0%} of them; fell back to the {knee.reason}")
        return EpsChoice(knee.eps, reason, min_samples, knee.curve, tuple(candidates))
    best = max(acceptable, key=lambda c: c.score)
    larger = [c for c in candidates if c.quantile > best.quantile and not c.acceptable]
    where = f"{m} sampled points" if sampled else "all points"
    reason = (
        f"best of {len(candidates)} eps values (5%..95% quantiles of the {min_samples}-distance) "
        f"tried on {where}: at the {best.quantile:.0%} quantile they form {best.clusters} "
        f"clusters, {best.noise:.0%} noise, largest {best.largest:.0%}, mean silhouette "
        f"{best.silhouette:.2f} (score {best.score:.3f} = silhouette x share clustered)"
    )
    if sampled:
        reason += (f"; eps {best.eps:.4f} is that quantile over all points "
                   f"({best.sample_eps:.4f} within the sample)")
    if larger:
        reason += (f"; from the {larger[0].quantile:.0%} quantile up one cluster holds "
                   f"{larger[0].largest:.0%}")
    return EpsChoice(best.eps, reason, min_samples, curve, tuple(candidates))
