"""A 2-D map of the collection: every image placed by its ``mobilenet`` vector.

``simimg-admin map`` lays the vectors out with UMAP (cosine neighbourhoods, so nearby dots
are similar images), or with PCA when the collection is tiny (UMAP's neighbour graph needs
more points, and its numba compile costs more than the layout). Positions are scaled into
the unit square and stored as the ``map_x`` / ``map_y`` payload of each point; the page
reads them back with :func:`read_map`. Images ingested later have no position until the
next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.cluster_labels import read_vectors
from service.clustering.vectors import reduce_dimensions, unit_rows
from service.errors import ConfigError, EmptyCollectionError
from service.store.base import VectorStore
from service.store.schema import (
    PAYLOAD_CLUSTER,
    PAYLOAD_MAP_X,
    PAYLOAD_MAP_Y,
    VECTOR_MOBILENET,
)

METHODS = ("auto", "umap", "pca")
# Below this many images `auto` uses PCA. UMAP also needs more points than neighbours.
UMAP_MIN_POINTS = 1000
UMAP_NEIGHBOURS = 15
# UMAP runs on this many principal axes of the unit vectors: same neighbours, much faster.
UMAP_INPUT_DIMS = 50
# UMAP's own default is 500 epochs below 10,000 points and 200 above; 200 everywhere keeps
# small maps as fast (the layout settles well before).
UMAP_EPOCHS = 200
DECIMALS = 5  # stored precision: 1e-5 of the map's side is far below a pixel

Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class MapReport:
    """What a ``map`` run did."""

    points: int
    method: str
    seconds_layout: float
    seconds_total: float

    def to_json(self) -> dict[str, object]:
        return {"points": self.points, "method": self.method,
                "seconds_layout": round(self.seconds_layout, 3),
                "seconds_total": round(self.seconds_total, 3)}


@dataclass
class MapPoints:
    """Stored map positions: ids, (n, 2) float32 positions, cluster labels (-2 = none)."""

    ids: list[str]
    xy: np.ndarray
    clusters: np.ndarray
    unplaced: int  # points without a position (ingested after the last `map`)


UNLABELLED = -2  # cluster value of a point that has no `cluster` payload


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def resolve_method(method: str, n: int) -> str:
    """``auto`` -> ``umap`` or ``pca`` by collection size; anything unknown is refused."""
    check_method(method)
    if method == "auto":
        return "umap" if n >= UMAP_MIN_POINTS else "pca"
    if method == "umap" and n <= UMAP_NEIGHBOURS + 1:
        raise ConfigError(f"--method umap needs more than {UMAP_NEIGHBOURS + 1} images, got {n}")
    return method


def layout(vectors: np.ndarray, method: str = "auto", seed: int | None = None) -> np.ndarray:
    """(n, 2) float32 positions in the unit square for ``vectors`` (n x d), by cosine."""
    x = unit_rows(vectors)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    chosen = resolve_method(method, n)
    if n == 1:
        return np.full((1, 2), 0.5, np.float32)
    return fit_unit_square(_pca_2d(x) if chosen == "pca" else _umap_2d(x, seed))


def _pca_2d(x: np.ndarray, fit_sample: int = 20_000) -> np.ndarray:
    """Rows projected on the two main axes of the centred data (fitted on a sample)."""
    rng = np.random.default_rng(0)
    sample = x if len(x) <= fit_sample else x[rng.choice(len(x), fit_sample, replace=False)]
    mean = sample.mean(axis=0)
    centred = sample - mean
    _, axes = np.linalg.eigh(centred.T @ centred)  # ascending
    top = np.ascontiguousarray(axes[:, ::-1][:, :2])
    return x @ top - mean @ top


def _umap_2d(x: np.ndarray, seed: int | None) -> np.ndarray:
    import umap  # ~6 s to import (numba): only the map command pays for it

    if x.shape[1] > UMAP_INPUT_DIMS and len(x) > UMAP_INPUT_DIMS:
        x, _ = reduce_dimensions(x, UMAP_INPUT_DIMS, seed=seed or 0)
    reducer = umap.UMAP(
        n_components=2, n_neighbors=UMAP_NEIGHBOURS, min_dist=0.1, metric="cosine",
        n_epochs=UMAP_EPOCHS,
        random_state=seed, init="pca" if len(x) > 50_000 else "spectral", low_memory=True,
    )
    return reducer.fit_transform(x)


def fit_unit_square(xy: np.ndarray) -> np.ndarray:
    """Scale and centre positions into [0, 1]^2, keeping the aspect ratio."""
    xy = np.asarray(xy, np.float64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = float((high - low).max())
    if span <= 0:
        return np.full(xy.shape, 0.5, np.float32)
    scaled = (xy - low) / span
    scaled += (1.0 - (high - low) / span) / 2  # centre the shorter side
    return scaled.astype(np.float32)


def build_map(
    store: VectorStore, method: str = "auto", seed: int | None = None,
    progress: Progress = _no_progress,
) -> MapReport:
    """Lay out every point with a ``mobilenet`` vector and store its ``map_x`` / ``map_y``."""
    started = time.perf_counter()
    ids, vectors = read_vectors(store, VECTOR_MOBILENET, progress=progress)
    if not ids:
        raise EmptyCollectionError(
            "no image has a mobilenet vector: run `simimg-admin ingest FOLDER` first"
        )
    chosen = resolve_method(method, len(ids))
    t0 = time.perf_counter()
    xy = layout(vectors, chosen, seed)
    seconds_layout = time.perf_counter() - t0
    del vectors
    write_positions(store, ids, xy, progress)
    return MapReport(len(ids), chosen, seconds_layout, time.perf_counter() - started)


def write_positions(
    store: VectorStore, ids: list[str], xy: np.ndarray, progress: Progress = _no_progress
) -> None:
    """Set each point's ``map_x`` / ``map_y`` (one payload write per point), then flush."""
    rounded = np.round(np.asarray(xy, np.float64), DECIMALS)
    for i, point_id in enumerate(ids):
        store.set_payload({PAYLOAD_MAP_X: float(rounded[i, 0]),
                           PAYLOAD_MAP_Y: float(rounded[i, 1])}, [point_id])
        if i % 1000 == 999:
            progress("write", i + 1, len(ids))
    progress("write", len(ids), len(ids))
    store.flush()


def read_map(store: VectorStore, page_size: int = 4096) -> MapPoints:
    """Every stored position with its point id and cluster label, in id order."""
    ids: list[str] = []
    xs: list[float] = []
    ys: list[float] = []
    clusters: list[int] = []
    unplaced = 0
    fields = [PAYLOAD_MAP_X, PAYLOAD_MAP_Y, PAYLOAD_CLUSTER]
    for page in store.scroll(page_size, with_payload=fields):
        for record in page:
            payload = record.payload
            x, y = payload.get(PAYLOAD_MAP_X), payload.get(PAYLOAD_MAP_Y)
            if x is None or y is None:
                unplaced += 1
                continue
            ids.append(record.id)
            xs.append(float(x))
            ys.append(float(y))
            label = payload.get(PAYLOAD_CLUSTER)
            clusters.append(UNLABELLED if label is None else int(label))
    xy = np.column_stack([np.asarray(xs, np.float32), np.asarray(ys, np.float32)]) \
        if ids else np.zeros((0, 2), np.float32)
    return MapPoints(ids, xy, np.asarray(clusters, np.int32), unplaced)
