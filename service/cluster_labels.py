"""Cluster the stored collection: read vectors in pages, cluster, write `cluster` labels.

Crash safety (see :mod:`service.clustering_runs`): labels are computed and staged in the
state directory first, then a pending record commits the run, then labels are written to
the payload in batches, then the run record becomes current. A killed run is either
invisible (killed before the commit: the previous labels and record are untouched) or is
rolled forward by :func:`finish_pending_run`, which every command and the UI run first
(through :func:`service.collection.open_collection`).
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service import clustering_runs as runs
from service.atomic import atomic_write
from service.cluster_names import clear_stale_names
from service.cluster_neighbours import dbscan_from_store
from service.clustering.results import ClusteringResult, EpsChoice
from service.clustering.vectors import cluster_vectors
from service.config import Settings
from service.errors import ConfigError, EmptyCollectionError
from service.indexing import index_if_due
from service.store.base import PointFilter, PointRecord, VectorStore
from service.store.schema import (
    MOBILENET_DIM,
    PAYLOAD_CLUSTER,
    PAYLOAD_CLUSTER_NAME,
    PAYLOAD_PATH,
    PAYLOAD_ROOT,
    SPACES,
    VECTOR_AUTOENCODER,
)

READ_PAGE = 1000
LABEL_BATCH = 1000
NEIGHBOURS = ("auto", "exact", "index")
# From this many points DBSCAN takes its neighbourhoods from the vector index (batched
# Qdrant queries, ~3 ms a point here) instead of comparing all pairs (74 s at 100k, growing
# with the square): they cross near 400k (docs/benchmarks-scale.md).
INDEX_NEIGHBOURS_FROM = 400_000
# scikit-learn's HDBSCAN took 24 s at 10,000 points here (docs/benchmarks-cluster.md) and
# grows about with the square of the points: minutes at 50,000, hours at a million.
HDBSCAN_MAX_POINTS = 50_000

Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


def space_filter(space: str, model_id: str | None = None) -> PointFilter:
    """Points that have a vector in ``space`` (for the autoencoder: made by ``model_id``)."""
    if space not in SPACES:
        raise ConfigError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
    return PointFilter(
        has_vector=space,
        autoencoder_model=model_id if space == VECTOR_AUTOENCODER else None,
    )


def read_vectors(
    store: VectorStore, space: str, model_id: str | None = None,
    progress: Progress = _no_progress, page_size: int = READ_PAGE,
) -> tuple[list[str], np.ndarray]:
    """Ids and float32 vectors (one row each) of every point with a ``space`` vector."""
    where = space_filter(space, model_id)
    total = store.count(where)
    ids: list[str] = []
    buffer: np.ndarray | None = None
    for page in store.scroll(page_size, with_vectors=[space], where=where):
        rows = [(r.id, r.vectors[space]) for r in page if space in r.vectors]
        if not rows:
            continue
        if buffer is None:
            buffer = np.empty((max(total, len(rows)), len(rows[0][1])), np.float32)
        if len(ids) + len(rows) > len(buffer):  # points were added while reading
            buffer = np.concatenate([buffer, np.empty_like(buffer[: len(rows) + len(buffer) // 4])])
        for record_id, vector in rows:
            buffer[len(ids)] = vector
            ids.append(record_id)
        progress("read", len(ids), max(total, len(ids)))
    if buffer is None:
        return [], np.zeros((0, 0), np.float32)
    return ids, buffer[: len(ids)]


def apply_labels(
    store: VectorStore, ids: list[str], labels: np.ndarray,
    progress: Progress = _no_progress, batch: int | None = None,
) -> None:
    """Make ``cluster`` equal ``labels`` on every point in ``ids`` and absent from every other
    point, so no label from an earlier run survives, and remove every ``cluster_name`` (names
    are given per run). Idempotent.

    Only points whose label changes are written: on the embedded engine a write moves the
    point out of the vector index until the next build (see ``service.store.edge``), so a
    re-run that finds the same clusters leaves the index whole.
    """
    batch = batch or LABEL_BATCH
    current: dict[str, Any] = {}
    named: list[str] = []  # names belong to the previous labelling
    for page in store.scroll(READ_PAGE, with_payload=[PAYLOAD_CLUSTER, PAYLOAD_CLUSTER_NAME]):
        for record in page:
            current[record.id] = record.payload.get(PAYLOAD_CLUSTER)
            if PAYLOAD_CLUSTER_NAME in record.payload:
                named.append(record.id)
    changed = np.array([current.get(pid) != int(label) for pid, label in zip(ids, labels,
                                                                             strict=True)],
                       dtype=bool)
    order = np.flatnonzero(changed)
    order = order[np.argsort(labels[order], kind="stable")]
    ordered = labels[order]
    bounds = np.flatnonzero(np.diff(ordered)) + 1
    done = len(ids) - order.size
    progress("write", done, len(ids))
    for group in np.split(order, bounds) if order.size else []:
        label = int(labels[group[0]])
        for start in range(0, group.size, batch):
            part = group[start : start + batch]
            store.set_payload({PAYLOAD_CLUSTER: label}, [ids[i] for i in part])
            done += part.size
            progress("write", done, len(ids))
    labelled = set(ids)
    stale = [pid for pid, label in current.items() if label is not None and pid not in labelled]
    for start in range(0, len(stale), batch):
        store.delete_payload_key(PAYLOAD_CLUSTER, stale[start : start + batch])
    clear_stale_names(store, named)
    store.flush()


def finish_pending_run(
    settings: Settings, store: VectorStore, progress: Progress = _no_progress
) -> dict[str, Any] | None:
    """Roll a committed but interrupted run forward; drop stages of uncommitted runs.

    Returns the completed run record, or None when nothing was pending.
    """
    pending = runs.pending_run(settings)
    if pending is None:
        runs.discard_staged(settings, keep=None)
        return None
    run_id, record = pending["run_id"], pending["record"]
    ids, labels = runs.load_staged_labels(settings, run_id)
    apply_labels(store, ids, labels, progress)
    runs.complete_run(settings, run_id, record)
    return record


@dataclass
class ClusterRun:
    """A finished run: the algorithm's result and the record saved for ``status``."""

    result: ClusteringResult
    record: dict[str, Any]
    ids: list[str]


def cluster_collection(
    settings: Settings,
    store: VectorStore,
    space: str = "mobilenet",
    eps: float | str = "auto",
    min_samples: int = 5,
    algorithm: str = "dbscan",
    dims: int | str | None = "auto",
    model_id: str | None = None,
    progress: Progress = _no_progress,
    on_eps: Callable[[EpsChoice], None] | None = None,
    on_result: Callable[[ClusteringResult], None] | None = None,
    neighbours: str = "auto",
) -> ClusterRun:
    """Cluster every point with a ``space`` vector and make the labels current.

    ``model_id``: the current autoencoder version (required for that space). ``on_result``
    is called after clustering, before any label is written (the CLI prints the table).
    ``neighbours`` (DBSCAN): ``"exact"`` compares all pairs, ``"index"`` asks the vector
    index (:mod:`service.cluster_neighbours`), ``"auto"`` the index from
    ``INDEX_NEIGHBOURS_FROM`` points.
    """
    if space == VECTOR_AUTOENCODER and model_id is None:
        raise ConfigError("clustering the autoencoder space needs its current model version")
    if neighbours not in NEIGHBOURS:
        raise ConfigError(f"neighbours must be one of {', '.join(NEIGHBOURS)}, got {neighbours!r}")
    finish_pending_run(settings, store, progress)
    started = datetime.now(UTC)
    where = space_filter(space, model_id)
    total = store.count(where)
    if algorithm == "hdbscan" and total > HDBSCAN_MAX_POINTS:
        raise ConfigError(f"hdbscan is limited to {HDBSCAN_MAX_POINTS:,} points (its time "
                          f"grows with the square of the points) and the collection has "
                          f"{total:,}; use --algorithm dbscan, which scales")
    if algorithm == "dbscan" and (
        neighbours == "index" or (neighbours == "auto" and total >= INDEX_NEIGHBOURS_FROM)
    ):
        dim = settings.latent_dim if space == VECTOR_AUTOENCODER else MOBILENET_DIM
        ids, result = _dbscan_by_index(store, space, dim, where, eps, min_samples, progress,
                                       on_eps)
    else:
        ids, vectors = read_vectors(store, space, model_id, progress)
        if ids:
            try:
                result = cluster_vectors(vectors, eps, min_samples, algorithm, dims, progress,
                                         on_eps)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        del vectors
    if not ids:
        raise EmptyCollectionError(
            f"no image has a {space} vector: run `simimg-admin ingest FOLDER` first"
        )
    if on_result is not None:
        on_result(result)
    run_id = uuid.uuid4().hex[:12]
    record = {
        "run_id": run_id,
        "space": space,
        "model_id": model_id,
        **result.summary(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    runs.stage_labels(settings, run_id, ids, result.labels)
    runs.commit_run(settings, run_id, record)
    apply_labels(store, ids, result.labels, progress)
    runs.complete_run(settings, run_id, record)
    if index_if_due(settings, store, keep_serving=True,
                    notify=lambda _message: progress("index", 0, 1)) is not None:
        progress("index", 1, 1)
    return ClusterRun(result, record, ids)


def _dbscan_by_index(
    store: VectorStore, space: str, dims: int, where: PointFilter, eps: float | str,
    min_samples: int, progress: Progress, on_eps: Callable[[EpsChoice], None] | None,
) -> tuple[list[str], ClusteringResult]:
    started = time.perf_counter()
    try:
        ids, labels, used, reason = dbscan_from_store(
            store, space, where, eps, min_samples, progress, on_eps
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ids, ClusteringResult(
        labels=labels, algorithm="dbscan", eps=used, min_samples=min_samples, dims=dims,
        explained_variance=None, eps_reason=reason, seconds=time.perf_counter() - started,
        neighbours="index",
    )


@dataclass
class ClusterListing:
    """One cluster of the current labelling with a few example files."""

    cluster: int
    size: int
    examples: list[str]
    name: str | None = None  # given with `simimg-admin name-cluster`


def _labelled_points(store: VectorStore) -> Iterator[PointRecord]:
    for page in store.scroll(READ_PAGE):
        yield from page


def list_clusters(store: VectorStore, examples: int = 3) -> list[ClusterListing]:
    """Every cluster (noise as -1, last) with its size, name and up to ``examples`` paths."""
    sizes: dict[int, int] = {}
    samples: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for record in _labelled_points(store):
        label = record.payload.get(PAYLOAD_CLUSTER)
        if label is None:
            continue
        label = int(label)
        sizes[label] = sizes.get(label, 0) + 1
        if PAYLOAD_CLUSTER_NAME in record.payload:
            names[label] = str(record.payload[PAYLOAD_CLUSTER_NAME])
        bucket = samples.setdefault(label, [])
        if len(bucket) < examples:
            bucket.append(_file_of(record.payload))
    order = sorted(sizes, key=lambda c: (c < 0, -sizes[c], c))
    return [ClusterListing(c, sizes[c], samples[c], names.get(c)) for c in order]


def export_labels(store: VectorStore, path: Path) -> int:
    """Write ``id,path,root,cluster`` for every point (empty cluster = unlabelled)."""
    written = 0
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "root", "cluster"])
        for record in _labelled_points(store):
            payload = record.payload
            label = payload.get(PAYLOAD_CLUSTER)
            writer.writerow([record.id, payload.get(PAYLOAD_PATH, ""),
                             payload.get(PAYLOAD_ROOT, ""), "" if label is None else int(label)])
            written += 1
    return written


def _file_of(payload: dict[str, Any]) -> str:
    root, path = payload.get(PAYLOAD_ROOT), payload.get(PAYLOAD_PATH, "")
    return str(Path(root) / path) if root else str(path)
