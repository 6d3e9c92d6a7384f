"""One contract for every VectorStore backend, on random unit vectors.

Backends: ``edge`` (qdrant-edge in tmp_path), ``local`` (qdrant-client local mode in
tmp_path) and ``server`` (a real Qdrant at ``QDRANT_URL``; skipped when it is not set).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from service.config import Settings
from service.errors import StoreError, StoreInUseError
from service.store import Hit, PointFilter, PointRecord, VectorStore, open_store, schema
from service.store.edge import EdgeStore
from service.store.server import ServerStore
from tests.conftest import STORED_VECTOR_ATOL

LATENT = 16
MN, AE = schema.VECTOR_MOBILENET, schema.VECTOR_AUTOENCODER
QDRANT_URL = os.environ.get("QDRANT_URL")


# -- helpers -------------------------------------------------------------------------


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_points(
    n: int, seed: int = 0, with_ae: bool = True, clusters: int | None = 3
) -> list[PointRecord]:
    """``n`` points with a mobilenet vector, optionally an autoencoder one and a cluster."""
    rng = np.random.default_rng(seed)
    mn, ae = unit(rng, n, schema.MOBILENET_DIM), unit(rng, n, LATENT)
    points = []
    for i in range(n):
        sha = f"{seed:04d}{i:060d}"
        payload: dict[str, Any] = {
            schema.PAYLOAD_PATH: f"dir/img_{i}.jpg",
            schema.PAYLOAD_SHA256: sha,
            schema.PAYLOAD_WIDTH: 100 + i,
            schema.PAYLOAD_FORMAT: "JPEG",
        }
        if clusters is not None:
            payload[schema.PAYLOAD_CLUSTER] = i % clusters
        vectors = {MN: mn[i]} | ({AE: ae[i]} if with_ae else {})
        points.append(PointRecord(schema.point_id_for(sha), vectors, payload))
    return points


def normalised(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


class Backend:
    """Opens stores of one kind on one location, and closes them all at teardown."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.collection = f"simimg_test_{uuid.uuid4().hex[:12]}" if kind == "server" else "images"
        self.stores: list[VectorStore] = []

    def settings(self, latent_dim: int = LATENT, **options: Any) -> Settings:
        url = QDRANT_URL if self.kind == "server" else None
        return Settings(
            data_dir=self.tmp_path / "data",
            collection=self.collection,
            qdrant_url=url,
            qdrant_api_key=os.environ.get("QDRANT_API_KEY") if url else None,
            latent_dim=latent_dim,
            **options,
        )

    def create(self, latent_dim: int = LATENT, **options: Any) -> VectorStore:
        """A store object, without ensure_collection."""
        settings = self.settings(latent_dim, **options)
        store: VectorStore
        if self.kind == "edge":
            store = EdgeStore(settings)
        elif self.kind == "local":
            store = ServerStore(settings, location=self.tmp_path / "qdrant-local")
        else:
            store = ServerStore(settings)
        self.stores.append(store)
        return store

    def open(self, latent_dim: int = LATENT, **options: Any) -> VectorStore:
        store = self.create(latent_dim, **options)
        store.ensure_collection()
        return store

    def cleanup(self) -> None:
        for store in self.stores:
            store.close()
        if self.kind == "server":
            client = QdrantClient(url=QDRANT_URL, api_key=os.environ.get("QDRANT_API_KEY"))
            client.delete_collection(self.collection)
            client.close()


@pytest.fixture(params=["edge", "local", "server"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "server" and not QDRANT_URL:
        pytest.skip("QDRANT_URL is not set")
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def store(backend: Backend) -> VectorStore:
    return backend.open()


def ids_of(points: list[PointRecord]) -> list[str]:
    return [p.id for p in points]


# -- the contract --------------------------------------------------------------------


def test_ensure_collection_is_idempotent(backend: Backend) -> None:
    store = backend.open()
    store.ensure_collection()
    assert store.count() == 0
    store.upsert(make_points(5))
    store.ensure_collection()
    assert store.count() == 5
    assert store.name in ("edge", "server")


def test_upsert_retrieve_round_trip(store: VectorStore) -> None:
    points = make_points(12)
    store.upsert(points)
    got = {p.id: p for p in store.retrieve(ids_of(points), with_vectors=True)}
    assert set(got) == set(ids_of(points))
    for p in points:
        r = got[p.id]
        assert r.payload == p.payload
        assert set(r.vectors) == {MN, AE}
        for name in (MN, AE):
            assert r.vectors[name].dtype == np.float32
            np.testing.assert_allclose(
                normalised(r.vectors[name]), normalised(p.vectors[name]), atol=STORED_VECTOR_ATOL
            )

    only_ae = store.retrieve([points[0].id], with_vectors=[AE])
    assert set(only_ae[0].vectors) == {AE}
    bare = store.retrieve([points[0].id])
    assert bare[0].vectors == {} and bare[0].payload == points[0].payload
    missing = str(uuid.uuid4())
    assert ids_of(store.retrieve([missing, points[1].id])) == [points[1].id]


def test_vectors_reads_one_space_of_the_ids_that_have_it(store: VectorStore) -> None:
    """The re-score's read: the named vectors of the given ids as one float32 matrix, rows
    matching the returned ids; missing ids and points without that vector left out."""
    points = make_points(8) + make_points(3, seed=1, with_ae=False)
    store.upsert(points)
    asked = [p.id for p in points[::-1]] + [str(uuid.uuid4())]
    found, matrix = store.vectors(asked, AE)
    assert sorted(found) == sorted(ids_of(points[:8]))
    assert matrix.dtype == np.float32 and matrix.shape == (8, LATENT)
    by_id = {p.id: p for p in points}
    for pid, row in zip(found, matrix, strict=True):
        np.testing.assert_allclose(normalised(row), normalised(by_id[pid].vectors[AE]),
                                   atol=STORED_VECTOR_ATOL)
    found, matrix = store.vectors([p.id for p in points], MN)
    assert sorted(found) == sorted(ids_of(points)) and matrix.shape == (11, schema.MOBILENET_DIM)
    assert store.vectors([str(uuid.uuid4())], MN)[0] == []


def test_upsert_replaces_whole_point(store: VectorStore) -> None:
    p = make_points(1)[0]
    store.upsert([p])
    replacement = PointRecord(p.id, {MN: p.vectors[MN]}, {schema.PAYLOAD_PATH: "new.jpg"})
    store.upsert([replacement])
    (r,) = store.retrieve([p.id], with_vectors=True)
    assert set(r.vectors) == {MN}
    assert r.payload == {schema.PAYLOAD_PATH: "new.jpg"}


def test_mobilenet_only_points_and_update_vectors(store: VectorStore) -> None:
    points = make_points(10, with_ae=False)
    store.upsert(points)
    for r in store.retrieve(ids_of(points), with_vectors=True):
        assert set(r.vectors) == {MN}
    assert store.search(unit(np.random.default_rng(5), 1, LATENT)[0], AE, 5) == []

    ae = unit(np.random.default_rng(9), 4, LATENT)
    store.update_vectors({p.id: {AE: ae[i]} for i, p in enumerate(points[:4])})
    got = {r.id: r for r in store.retrieve(ids_of(points), with_vectors=True)}
    for i, p in enumerate(points):
        r = got[p.id]
        np.testing.assert_allclose(normalised(r.vectors[MN]), normalised(p.vectors[MN]),
                                   atol=STORED_VECTOR_ATOL)
        if i < 4:
            np.testing.assert_allclose(normalised(r.vectors[AE]), normalised(ae[i]),
                                       atol=STORED_VECTOR_ATOL)
        else:
            assert AE not in r.vectors
        assert r.payload == p.payload  # update_vectors leaves the payload alone
    hits = store.search(ae[2], AE, 10)
    assert {h.id for h in hits} == set(ids_of(points[:4]))
    assert hits[0].id == points[2].id


def test_search_self_retrieval_scores_and_order(store: VectorStore) -> None:
    points = make_points(40)
    store.upsert(points)
    mn = np.stack([p.vectors[MN] for p in points])
    for i in (0, 7, 39):
        hits = store.search(points[i].vectors[MN], MN, 10)
        assert len(hits) == 10
        assert all(isinstance(h, Hit) for h in hits)
        assert hits[0].id == points[i].id and hits[0].score > 0.99
        assert hits[0].payload == points[i].payload
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        expected = mn @ mn[i]
        by_id = dict(zip(ids_of(points), expected, strict=True))
        for h in hits:
            assert h.score == pytest.approx(by_id[h.id], abs=STORED_VECTOR_ATOL)
        assert [h.id for h in hits] == [ids_of(points)[j] for j in np.argsort(-expected)[:10]]
    # an unnormalised query scores the same (cosine)
    hits = store.search(points[3].vectors[AE] * 7.5, AE, 1)
    assert hits[0].id == points[3].id
    assert hits[0].score == pytest.approx(1.0, abs=STORED_VECTOR_ATOL)


def test_search_with_cluster_filter(store: VectorStore) -> None:
    points = make_points(30, clusters=3)
    store.upsert(points)
    hits = store.search(points[0].vectors[MN], MN, 30, PointFilter(cluster=1))
    assert len(hits) == 10
    assert all(h.payload[schema.PAYLOAD_CLUSTER] == 1 for h in hits)
    assert points[0].id not in {h.id for h in hits}  # cluster 0
    assert store.search(points[0].vectors[MN], MN, 5, PointFilter(cluster=42)) == []


def test_search_batch_matches_single_searches_and_drops_low_scores(store: VectorStore) -> None:
    """One batched query per vector (the duplicates scan's neighbour source), a score floor
    and a filter, agreeing with one search per vector."""
    points = make_points(30, clusters=3)
    store.upsert(points)
    queries = [points[i].vectors[MN] for i in (0, 5, 17)]
    batched = store.search_batch(queries, MN, 8, PointFilter(cluster=1), min_score=None)
    for query, hits in zip(queries, batched, strict=True):
        single = store.search(query, MN, 8, PointFilter(cluster=1))
        assert [h.id for h in hits] == [h.id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-6)
    ranked = sorted(h.score for h in batched[0])
    floor = (ranked[4] + ranked[5]) / 2  # between two scores: no float ties at the floor
    above = store.search_batch(queries[:1], MN, 8, PointFilter(cluster=1), min_score=floor)[0]
    assert [h.id for h in above] == [h.id for h in batched[0] if h.score >= floor]
    assert store.search_batch([], MN, 8) == []


def test_neighbour_pages_cover_every_point_once_with_its_batched_search(
    store: VectorStore,
) -> None:
    """The clustering scan: every point matching the filter (and having the vector) comes
    once, in pages, with the hits ``search_batch`` gives for its own stored vector."""
    points = make_points(45, clusters=3)
    points += make_points(5, seed=1, with_ae=False)  # no autoencoder vector
    store.upsert(points)
    by_id = {p.id: p for p in points}
    pages = list(store.neighbour_pages(AE, 6, PointFilter(cluster=1), min_score=0.1, page=4))
    assert all(len(ids) <= 4 for ids, _ in pages) and len(pages) >= 4
    seen = [pid for ids, _ in pages for pid in ids]
    expected = {p.id for p in points if p.payload.get(schema.PAYLOAD_CLUSTER) == 1
                and AE in p.vectors}
    assert len(seen) == len(set(seen)) and set(seen) == expected
    for ids, results in pages:
        batched = store.search_batch([by_id[pid].vectors[AE] for pid in ids], AE, 6,
                                     PointFilter(cluster=1), min_score=0.1)
        assert [[h.id for h in hits] for hits in results] == \
            [[h.id for h in hits] for hits in batched]
        assert all(hits and hits[0].id == pid for pid, hits in zip(ids, results, strict=True))


def test_recommend_scores_are_similarities_to_the_closest_example(store: VectorStore) -> None:
    """Qdrant's best_score recommend, its score turned back into a cosine similarity: the
    closest positive's for points nearer a positive, -(2 + the closest negative's) below."""
    points = make_points(40, clusters=3)
    store.upsert(points)
    mn = np.stack([normalised(p.vectors[MN]) for p in points])
    liked, unliked = [0, 1], [2, 3]
    cos = mn @ mn[liked + unliked].T
    best_pos, best_neg = cos[:, :2].max(axis=1), cos[:, 2:].max(axis=1)
    expected = np.where(best_pos > best_neg, best_pos, -(2 + best_neg))
    examples = [points[i].id for i in liked + unliked]
    hits = store.recommend(
        [points[i].vectors[MN] for i in liked], [points[i].vectors[MN] for i in unliked],
        MN, 40, PointFilter(exclude_ids=tuple(examples)),
    )
    assert len(hits) == 36 and not {h.id for h in hits} & set(examples)
    by_id = dict(zip(ids_of(points), expected, strict=True))
    assert [h.score for h in hits] == pytest.approx([by_id[h.id] for h in hits],
                                                   abs=STORED_VECTOR_ATOL)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert any(h.score < -1 for h in hits) and any(h.score > 0 for h in hits)
    # one positive and no negative: the same ranking and scores as a plain search
    plain = store.search(points[5].vectors[AE], AE, 6, PointFilter(cluster=2))
    alone = store.recommend([points[5].vectors[AE]], [], AE, 6, PointFilter(cluster=2))
    assert [h.id for h in alone] == [h.id for h in plain]
    assert [h.score for h in alone] == pytest.approx([h.score for h in plain], abs=1e-5)
    assert alone[0].payload == plain[0].payload


def test_payload_indexes_exist(backend: Backend) -> None:
    store = backend.open()
    if isinstance(store, EdgeStore):
        schema_info = store._run(lambda shard: shard.info().payload_schema)
    elif backend.kind == "server":
        assert isinstance(store, ServerStore)
        schema_info = store.client.get_collection(backend.collection).payload_schema
    else:
        pytest.skip("qdrant-client local mode has no payload indexes")
    assert set(schema.PAYLOAD_INDEXES) <= set(schema_info)
    # HNSW links per value only for `cluster`: every other field's would be built with the
    # index as sub-graphs (a whole second graph for `autoencoder_model`)
    links = {key: info.params.enable_hnsw for key, info in schema_info.items()}
    assert {key for key, linked in links.items() if linked} == {schema.PAYLOAD_CLUSTER}


def test_count_with_each_filter_condition(store: VectorStore) -> None:
    labelled = make_points(9, seed=1, clusters=3)  # clusters 0,1,2 x3, both vectors
    unlabelled = make_points(5, seed=2, with_ae=False, clusters=None)
    store.upsert(labelled + unlabelled)
    store.set_payload({schema.PAYLOAD_AE_MODEL: "ae-1"}, ids_of(labelled[:4]))
    store.set_payload({schema.PAYLOAD_AE_MODEL: "ae-0"}, ids_of(labelled[4:6]))

    assert store.count() == 14
    assert store.count(PointFilter()) == 14
    assert store.count(PointFilter(cluster=2)) == 3
    assert store.count(PointFilter(cluster=0)) == 3
    assert store.count(PointFilter(unlabelled=True)) == 5
    assert store.count(PointFilter(has_vector=AE)) == 9
    assert store.count(PointFilter(lacks_vector=AE)) == 5
    assert store.count(PointFilter(has_vector=MN)) == 14
    assert store.count(PointFilter(not_autoencoder_model="ae-1")) == 10  # 2 ae-0 + 8 missing
    assert store.count(PointFilter(has_vector=AE, not_autoencoder_model="ae-1")) == 5
    assert store.count(PointFilter(cluster=0, not_autoencoder_model="ae-1")) == 1
    assert store.count(PointFilter(autoencoder_model="ae-1")) == 4
    assert store.count(PointFilter(autoencoder_model="ae-0", cluster=1)) == 1
    assert store.count(PointFilter(unlabelled=True, has_vector=AE)) == 0
    # a cluster payload set to null counts as unlabelled
    store.set_payload({schema.PAYLOAD_CLUSTER: None}, [labelled[0].id])
    assert store.count(PointFilter(unlabelled=True)) == 6


def test_scroll_covers_every_point_once_in_id_order(store: VectorStore) -> None:
    points = make_points(53, clusters=4)
    store.upsert(points)
    pages = list(store.scroll(batch_size=7))
    assert all(1 <= len(page) <= 7 for page in pages)
    seen = [r.id for page in pages for r in page]
    assert len(seen) == len(set(seen)) == 53
    assert set(seen) == set(ids_of(points))
    assert seen == sorted(seen, key=uuid.UUID)
    assert all(r.vectors == {} and r.payload for page in pages for r in page)

    filtered = [
        r for page in store.scroll(5, with_vectors=[MN], where=PointFilter(cluster=1)) for r in page
    ]
    assert {r.id for r in filtered} == {p.id for p in points if p.payload["cluster"] == 1}
    assert all(set(r.vectors) == {MN} for r in filtered)
    assert list(store.scroll(where=PointFilter(cluster=99))) == []


def test_set_payload_and_delete_payload_key(store: VectorStore) -> None:
    points = make_points(6, clusters=None)
    store.upsert(points)
    ids = ids_of(points[:3])
    store.set_payload({schema.PAYLOAD_CLUSTER: 5, "extra": "x"}, ids)
    got = {r.id: r.payload for r in store.retrieve(ids_of(points))}
    for p in points:
        if p.id in ids:
            assert got[p.id] == p.payload | {schema.PAYLOAD_CLUSTER: 5, "extra": "x"}
        else:
            assert got[p.id] == p.payload
    assert store.count(PointFilter(cluster=5)) == 3

    # numpy scalars (e.g. DBSCAN labels) are accepted as payload values and filter values
    store.set_payload({schema.PAYLOAD_CLUSTER: np.int64(5)}, ids)
    assert store.count(PointFilter(cluster=np.int64(5))) == 3  # type: ignore[arg-type]

    store.delete_payload_key(schema.PAYLOAD_CLUSTER, ids[:2])
    got = {r.id: r.payload for r in store.retrieve(ids)}
    assert schema.PAYLOAD_CLUSTER not in got[ids[0]] and got[ids[0]]["extra"] == "x"
    assert got[ids[2]][schema.PAYLOAD_CLUSTER] == 5
    assert store.count(PointFilter(cluster=5)) == 1
    store.set_payload({"x": 1}, [])  # empty id list is a no-op
    store.delete_payload_key("x", [])


def test_writes_to_missing_ids_raise_store_error(store: VectorStore) -> None:
    """Both engines refuse (after applying the update to the ids that do exist)."""
    points = make_points(2)
    store.upsert(points)
    missing = str(uuid.uuid4())
    with pytest.raises(StoreError):
        store.set_payload({"k": 1}, [missing])
    with pytest.raises(StoreError):
        store.update_vectors({missing: {AE: points[0].vectors[AE]}})
    with pytest.raises(StoreError):
        store.delete_payload_key(schema.PAYLOAD_PATH, [missing])
    assert store.count() == 2


def test_existing_ids(store: VectorStore) -> None:
    points = make_points(8)
    store.upsert(points[:5])
    asked = [*ids_of(points), str(uuid.uuid4())]
    assert store.existing_ids(asked) == set(ids_of(points[:5]))
    assert store.existing_ids([]) == set()


def test_persistence_across_close_and_reopen(backend: Backend) -> None:
    points = make_points(20)
    store = backend.open()
    store.upsert(points)
    store.set_payload({"note": "kept"}, [points[0].id])
    store.flush()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.count()

    reopened = backend.open()
    assert reopened.count() == 20
    (r,) = reopened.retrieve([points[0].id], with_vectors=True)
    assert r.payload["note"] == "kept"
    np.testing.assert_allclose(
        normalised(r.vectors[AE]), normalised(points[0].vectors[AE]), atol=STORED_VECTOR_ATOL
    )
    assert reopened.search(points[4].vectors[MN], MN, 1)[0].id == points[4].id


def test_dim_mismatch_raises_store_error(backend: Backend) -> None:
    store = backend.open(latent_dim=LATENT)
    store.upsert(make_points(3))
    store.close()
    other = backend.create(latent_dim=LATENT * 2)
    with pytest.raises(StoreError, match="latent_dim") as info:
        other.ensure_collection()
    assert not isinstance(info.value, StoreInUseError)
    assert "\n" not in str(info.value)
    other.close()
    # the right setting still opens the data
    assert backend.open(latent_dim=LATENT).count() == 3


def test_threads_can_share_a_store(store: VectorStore) -> None:
    points = make_points(80)
    errors: list[BaseException] = []

    def work(chunk: list[PointRecord]) -> None:
        try:
            store.upsert(chunk)
            for p in chunk[:3]:
                store.search(p.vectors[MN], MN, 3)
            store.count(PointFilter(cluster=1))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(points[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 80


# -- backend-specific ----------------------------------------------------------------


def test_second_edge_store_on_same_dir_is_in_use(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, latent_dim=LATENT)
    first = EdgeStore(settings)
    first.ensure_collection()
    first.upsert(make_points(3))
    second = EdgeStore(settings)
    with pytest.raises(StoreInUseError) as info:
        second.ensure_collection()
    message = str(info.value)
    assert str(first.path) in message and "QDRANT_URL" in message and "\n" not in message
    second.close()
    # the first store is unaffected
    first.upsert(make_points(2, seed=7))
    assert first.count() == 5
    first.close()
    # once released, the directory opens again
    third = EdgeStore(settings)
    third.ensure_collection()
    assert third.count() == 5
    third.close()


def test_a_refused_process_never_touches_the_holders_data(tmp_path: Path) -> None:
    """Regression: qdrant-edge's own load() in a second process damaged the holder's
    segments before failing on the WAL lock ("Tracker journal ... is shorter than expected"
    at the holder's next flush). simimg's directory lock refuses the second process first."""
    import subprocess
    import sys

    settings = Settings(data_dir=tmp_path, latent_dim=LATENT)
    holder = EdgeStore(settings)
    holder.ensure_collection()
    holder.upsert(make_points(4))
    holder.flush()
    attempt = subprocess.run(
        [sys.executable, "-c",
         "from service.config import Settings\n"
         "from service.store.edge import EdgeStore\n"
         f"EdgeStore(Settings(data_dir={str(tmp_path)!r}, latent_dim={LATENT})"
         ").ensure_collection()\n"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert attempt.returncode != 0 and "StoreInUseError" in attempt.stderr
    holder.upsert(make_points(40, seed=9))
    holder.flush()
    holder.close()
    with EdgeStore(settings) as reopened:
        reopened.ensure_collection()
        assert reopened.count() == 44


def test_second_local_client_on_same_path_is_in_use(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, latent_dim=LATENT)
    first = ServerStore(settings, location=tmp_path / "local")
    try:
        with pytest.raises(StoreInUseError):
            ServerStore(settings, location=tmp_path / "local")
    finally:
        first.close()


def test_edge_store_directory_and_optimize(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, collection="c1", latent_dim=LATENT)
    with EdgeStore(settings) as store:
        store.ensure_collection()
        assert store.path == tmp_path / "qdrant-edge" / "c1"
        points = make_points(30)
        store.upsert(points)
        store.optimize()
        assert store.search(points[2].vectors[MN], MN, 1)[0].id == points[2].id


def test_open_store_picks_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(Settings(data_dir=tmp_path, latent_dim=LATENT))
    try:
        assert isinstance(store, EdgeStore) and store.count() == 0
    finally:
        store.close()
    # a server URL selects ServerStore; nothing listens on port 9, so the check fails cleanly
    # (without the client's version check, which warns from a thread after the test ends)
    import service.store.server as server_mod

    monkeypatch.setattr(
        server_mod, "QdrantClient", functools.partial(QdrantClient, check_compatibility=False)
    )
    with pytest.raises(StoreError):
        open_store(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:9", latent_dim=8))


def _filled(make: Callable[[], VectorStore], points: list[PointRecord]) -> VectorStore:
    store = make()
    store.ensure_collection()
    store.upsert(points)
    return store


def test_backends_agree_on_top_k(tmp_path: Path) -> None:
    points = make_points(60, seed=3, clusters=4)
    # float32 on both sides: qdrant-client's local mode ignores the storage datatype.
    settings = Settings(data_dir=tmp_path, latent_dim=LATENT, vector_datatype="float32")
    edge = _filled(lambda: EdgeStore(settings), points)
    local = _filled(lambda: ServerStore(settings, location=":memory:"), points)
    try:
        queries = unit(np.random.default_rng(11), 5, schema.MOBILENET_DIM)
        ae_queries = unit(np.random.default_rng(12), 5, LATENT)
        cases: list[tuple[np.ndarray, str, PointFilter | None]] = [
            *((q, MN, None) for q in queries),
            *((q, AE, None) for q in ae_queries),
            *((q, MN, PointFilter(cluster=2)) for q in queries[:2]),
        ]
        for q, space, where in cases:
            a, b = edge.search(q, space, 10, where), local.search(q, space, 10, where)
            assert [h.id for h in a] == [h.id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)
    finally:
        edge.close()
        local.close()


def test_int8_quantization_round_trip(backend: Backend) -> None:
    """int8 copies are searched, then rescored from the original vectors, which are kept
    (here on disk): scores equal the exact ones and vectors read back are the originals."""
    store = backend.open(quantization="int8", hnsw_full_scan_kb=100, vectors_on_disk=True)
    points = make_points(300, seed=5)
    store.upsert(points)
    store.optimize()
    if backend.kind == "edge":
        assert store.indexed_vectors() == 2 * len(points)
        config = json.loads((store.path / "edge_config.json").read_text())  # type: ignore[attr-defined]
        assert "int8" in json.dumps(config["quantization_config"]).lower()
        assert config["vectors"][MN]["memory"] == "cold"  # memory-mapped originals
    elif backend.kind == "server":  # local mode keeps no quantization config (it ignores it)
        info = store.client.get_collection(backend.collection)  # type: ignore[attr-defined]
        assert info.config.quantization_config is not None
    for point in points[::30]:
        hits = store.search(point.vectors[MN], MN, 5)
        exact = store.search(point.vectors[MN], MN, 5, exact=True)
        assert hits[0].id == point.id
        assert [h.id for h in hits] == [h.id for h in exact]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in exact], atol=1e-5)
        # candidates for a caller's own re-score: ids in int8 order, with original vectors
        found, vectors = store.candidates(point.vectors[MN], MN, 5)
        near = {h.id for h in store.search(point.vectors[MN], MN, 20, exact=True)}
        assert found[0] == point.id and len(set(found)) == 5 and set(found) <= near
        assert vectors.shape == (5, schema.MOBILENET_DIM) and hits[0].payload
        by_id = {p.id: p for p in points}
        for pid, row in zip(found, vectors, strict=True):
            np.testing.assert_allclose(row, by_id[pid].vectors[MN], atol=STORED_VECTOR_ATOL)
    stored = store.retrieve([points[7].id], with_vectors=True)[0]
    np.testing.assert_allclose(stored.vectors[MN], points[7].vectors[MN], atol=STORED_VECTOR_ATOL)
    np.testing.assert_allclose(stored.vectors[AE], points[7].vectors[AE], atol=STORED_VECTOR_ATOL)
