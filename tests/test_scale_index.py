"""The embedded store's vector index (issue 15), on real-derived vectors.

One small collection is built once for the module: the MobileNet vectors of the real photos
(foolbox ImageNet and scikit-image), topped up with vectors derived from them the way the
scale benchmark does (``benchmarks.duplicates.derived_vectors``). Its index is built on the
side (:func:`service.store.edge_index.build_index_aside`) while this thread keeps searching.
The full-scan threshold is lowered so a collection this small gets an index at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from benchmarks.duplicates import derived_vectors
from service.config import Settings
from service.duplicates.groups import DEFAULT_THRESHOLDS
from service.indexing import build_index, stored_vectors
from service.pipeline import EmbeddingPipeline
from service.store.base import PointRecord
from service.store.edge import EdgeStore
from service.store.edge_index import IndexBuild, build_index_aside
from service.store.schema import VECTOR_AUTOENCODER, VECTOR_MOBILENET
from service.walker import iter_image_files

POINTS = 1000
LATENT = 16


@dataclass
class Indexed:
    store: EdgeStore
    vectors: np.ndarray
    queries: np.ndarray
    build: IndexBuild | None = None
    during: list[tuple[float, bool]] = field(default_factory=list)  # (seconds, top-1 right)


def _ids(n: int) -> list[str]:
    return [f"00000000-0000-4000-8000-{i:012d}" for i in range(n)]


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, photo_dir: Path,
) -> Iterator[Indexed]:
    files = sorted(iter_image_files(imagenet_dir)) + sorted(iter_image_files(photo_dir))
    prepared = [mobilenet_pipeline.prepare_file(path) for path in files]
    real = mobilenet_pipeline.embed(prepared)[VECTOR_MOBILENET]
    rng = np.random.default_rng(0)
    vectors = derived_vectors(real, POINTS, 0.02, rng)
    queries = np.concatenate([real, derived_vectors(real, 40, 0.0, rng)])
    ae = vectors[:, :LATENT] / np.linalg.norm(vectors[:, :LATENT], axis=1, keepdims=True)
    settings = Settings(data_dir=tmp_path_factory.mktemp("indexed"), latent_dim=LATENT,
                        hnsw_full_scan_kb=100)
    store = EdgeStore(settings)
    store.ensure_collection()
    store.upsert([PointRecord(pid, {VECTOR_MOBILENET: vectors[i], VECTOR_AUTOENCODER: ae[i]},
                              {"n": i}) for i, pid in enumerate(_ids(POINTS))])
    state = Indexed(store, vectors, queries)
    builder = threading.Thread(target=lambda: setattr(state, "build", build_index_aside(store)))
    builder.start()
    n = 0
    while builder.is_alive():
        started = time.perf_counter()
        hits = store.search(vectors[n % POINTS], VECTOR_MOBILENET, 5)
        state.during.append((time.perf_counter() - started, hits[0].id == _ids(POINTS)[n % POINTS]))
        n += 1
    builder.join()
    yield state
    store.close()


def test_searches_are_answered_while_the_index_builds(indexed: Indexed) -> None:
    assert indexed.build is not None and indexed.build.optimized
    # the build (child process) took seconds; this thread searched all along
    assert len(indexed.during) >= 10
    assert all(right for _, right in indexed.during)


def test_the_store_reports_every_vector_indexed(indexed: Indexed) -> None:
    assert stored_vectors(indexed.store) == 2 * POINTS
    assert indexed.store.indexed_vectors() == 2 * POINTS
    assert indexed.store.count() == POINTS


def test_recall_at_10_through_the_index_against_exact(indexed: Indexed) -> None:
    store = indexed.store
    recalls = []
    for query in indexed.queries:
        found = {h.id for h in store.search(query, VECTOR_MOBILENET, 10)}
        exact = {h.id for h in store.search(query, VECTOR_MOBILENET, 10, exact=True)}
        recalls.append(len(found & exact) / 10)
    assert np.mean(recalls) >= 0.98


def test_exact_search_agrees_with_a_plain_scan(indexed: Indexed) -> None:
    store, matrix = indexed.store, indexed.vectors
    for query in indexed.queries[::4]:
        hits = store.search(query, VECTOR_MOBILENET, 10, exact=True)
        sims = matrix @ (query / np.linalg.norm(query))
        order = np.argsort(-sims)[:10]
        assert [h.id for h in hits[:3]] == [_ids(POINTS)[i] for i in order[:3]]
        np.testing.assert_allclose([h.score for h in hits], sims[order], atol=2e-3)


def test_the_all_points_scan_finds_the_near_duplicate_pairs_at_its_narrower_breadth(
    indexed: Indexed,
) -> None:
    """``search_batch`` (the duplicates and DBSCAN scans) walks the graph at
    ``scan_hnsw_ef``; each pair counts when either of its points' queries finds it."""
    store, matrix = indexed.store, indexed.vectors
    assert store.settings.scan_hnsw_ef < store.settings.hnsw_ef
    threshold = DEFAULT_THRESHOLDS[VECTOR_MOBILENET]
    ids = _ids(POINTS)
    sims = matrix @ matrix.T
    rows, cols = np.nonzero(np.triu(sims >= threshold + 2e-3, k=1))
    exact = set(zip(rows.tolist(), cols.tolist(), strict=True))
    found: set[tuple[int, int]] = set()
    position = {pid: i for i, pid in enumerate(ids)}
    for start in range(0, POINTS, 256):
        part = list(matrix[start : start + 256])
        for row, hits in enumerate(store.search_batch(part, VECTOR_MOBILENET, 17,
                                                      min_score=threshold)):
            me = start + row
            found |= {(min(me, position[h.id]), max(me, position[h.id])) for h in hits
                      if h.id != ids[me]}
    assert len(exact) >= 10  # the derived set has 2% near-duplicate copies
    assert len(exact & found) / len(exact) >= 0.98


def test_a_build_interrupted_at_the_swap_is_undone_on_open(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, latent_dim=LATENT)
    store = EdgeStore(settings)
    store.ensure_collection()
    rng = np.random.default_rng(3)
    store.upsert([PointRecord(pid, {VECTOR_MOBILENET: rng.standard_normal(1280)}, {})
                  for pid in _ids(10)])
    store.close()
    # killed between moving the live shard aside and moving the built copy in
    store.path.rename(store.path.with_name(store.path.name + ".replaced"))
    (store.path.with_name(store.path.name + ".indexing") / "segments").mkdir(parents=True)
    reopened = EdgeStore(settings)
    try:
        reopened.ensure_collection()
        assert reopened.count() == 10
        assert not store.path.with_name(store.path.name + ".indexing").exists()
        assert build_index(reopened).indexed_vectors == 0  # below the full-scan threshold
    finally:
        reopened.close()


def test_dbscan_from_index_queries_agrees_with_exact_dbscan(indexed: Indexed) -> None:
    from sklearn.metrics import adjusted_rand_score

    from service.cluster_neighbours import dbscan_from_store
    from service.clustering.dbscan import dbscan_cosine
    from service.clustering.vectors import unit_rows
    from service.store.base import PointFilter

    where = PointFilter(has_vector=VECTOR_MOBILENET)
    ids, labels, eps, reason = dbscan_from_store(
        indexed.store, VECTOR_MOBILENET, where, "auto", 5, lambda *_: None
    )
    assert ids == sorted(ids) and len(ids) == POINTS and reason
    exact = dbscan_cosine(unit_rows(indexed.vectors), eps, 5)
    order = np.array([int(pid[-12:]) for pid in ids])
    assert labels.max() >= 1  # at least two clusters: the comparison means something
    assert adjusted_rand_score(exact[order], labels) >= 0.95
    assert abs(int(labels.max()) - int(exact.max())) <= max(1, 0.05 * (exact.max() + 1))


def test_hdbscan_above_its_limit_is_a_one_line_error(
    indexed: Indexed, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.cluster_labels as cluster_labels
    from service.errors import ConfigError

    monkeypatch.setattr(cluster_labels, "HDBSCAN_MAX_POINTS", POINTS - 1)
    with pytest.raises(ConfigError, match=r"^hdbscan is limited to 999 points .* "
                                          r"use --algorithm dbscan, which scales$"):
        cluster_labels.cluster_collection(indexed.store.settings, indexed.store,
                                          algorithm="hdbscan")


def _labelled_store(tmp_path: Path, vectors: np.ndarray) -> tuple[Settings, EdgeStore]:
    """An indexed collection of ``vectors`` whose index is due again after 100 vectors."""
    settings = Settings(data_dir=tmp_path, latent_dim=LATENT, hnsw_full_scan_kb=100,
                        index_after=100)
    store = EdgeStore(settings)
    store.ensure_collection()
    ae = vectors[:, :LATENT] / np.linalg.norm(vectors[:, :LATENT], axis=1, keepdims=True)
    store.upsert([PointRecord(pid, {VECTOR_MOBILENET: vectors[i], VECTOR_AUTOENCODER: ae[i]}, {})
                  for i, pid in enumerate(_ids(len(vectors)))])
    store.optimize()
    return settings, store


def test_labelled_points_leave_the_index_until_the_rebuild_that_follows(
    indexed: Indexed, tmp_path: Path
) -> None:
    """qdrant-edge moves a written point out of its indexed segment: the store counts it as
    unindexed (across a reopen), and clustering rebuilds the index after writing labels."""
    from service.cluster_labels import apply_labels, cluster_collection
    from service.indexing import unindexed_vectors

    vectors = indexed.vectors[:400]
    settings, store = _labelled_store(tmp_path, vectors)
    ids = _ids(len(vectors))
    try:
        assert store.indexed_vectors() == 800 and unindexed_vectors(store) == 0
        labels = np.arange(len(ids)) % 3
        apply_labels(store, ids, labels)
        assert unindexed_vectors(store) == 800  # every point was written, so moved
        store.close()
        store = EdgeStore(settings)
        assert unindexed_vectors(store) == 800  # the count survives a restart
        assert build_index(store).indexed_vectors == 800
        apply_labels(store, ids, labels)  # the same labels again: nothing is written
        assert unindexed_vectors(store) == 0
        apply_labels(store, ids, np.where(np.arange(len(ids)) < 10, 5, labels))
        assert unindexed_vectors(store) == 20  # only the 10 changed points moved
        run = cluster_collection(settings, store, eps=0.3, neighbours="exact", dims=None)
        assert len(run.ids) == len(ids)
        assert unindexed_vectors(store) == 0  # relabelled, then rebuilt (due after 100)
        assert store.indexed_vectors() == 800
        labelled = {r.id: r.payload.get("cluster") for page in store.scroll() for r in page}
        assert [labelled[pid] for pid in run.ids] == [int(x) for x in run.result.labels]
    finally:
        store.close()
