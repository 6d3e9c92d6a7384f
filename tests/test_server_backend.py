"""The ingest + search suite on the server backend, plus its server-only features.

Every test runs on ``ServerStore`` in qdrant-client's local mode (the same client API as a
server) and again against a real Qdrant when ``QDRANT_URL`` is set, e.g.::

    docker-compose up -d qdrant
    QDRANT_URL=http://localhost:6333 .venv/bin/pytest tests/test_server_backend.py

Real-server tests use a fresh collection per test and delete it afterwards.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from ingest.report import IngestReport
from ingest.runner import FolderIngester
from service.config import Settings
from service.pipeline import EmbeddingPipeline
from service.store import schema
from service.store.server import ServerStore
from service.walker import Shard, iter_image_files
from tests import test_ingest_search as suite
from tests.conftest import make_settings

QDRANT_URL = os.environ.get("QDRANT_URL")
QDRANT_API_KEY = os.environ.get("QDRANT_API_KEY")

# The embedded backend's end-to-end suite, collected again here with ``store`` overridden
# below (the tests themselves live in tests/test_ingest_search.py).
test_collection_image_retrieves_itself_first = suite.test_collection_image_retrieves_itself_first
test_edited_copy_from_outside_finds_its_original = (
    suite.test_edited_copy_from_outside_finds_its_original
)
test_reingest_adds_nothing_and_identical_files_are_stored_once = (
    suite.test_reingest_adds_nothing_and_identical_files_are_stored_once
)
test_payload_describes_the_file = suite.test_payload_describes_the_file
test_salted_folder_ingests_every_good_image_and_lists_each_bad_one = (
    suite.test_salted_folder_ingests_every_good_image_and_lists_each_bad_one
)
test_cluster_filter_restricts_results = suite.test_cluster_filter_restricts_results
test_empty_collection_is_a_clear_error = suite.test_empty_collection_is_a_clear_error
test_collection_survives_restart = suite.test_collection_survives_restart


class Target:
    """Where a ServerStore points: qdrant-client local mode in tmp_path, or the real server."""

    def __init__(self, kind: str, tmp_path: Path, session_models_dir: Path) -> None:
        self.kind = kind
        self.location = tmp_path / "qdrant-local"
        self.collection = f"simimg_test_{uuid.uuid4().hex[:12]}"
        self.settings = make_settings(
            tmp_path / "data", session_models_dir, collection=self.collection,
            qdrant_url=QDRANT_URL if kind == "server" else None,
        )

    def open(self, **overrides: Any) -> ServerStore:
        """A ready store; ``overrides`` change settings (for a fresh collection only)."""
        settings = replace(self.settings, **overrides)
        store = (
            ServerStore(settings) if self.kind == "server"
            else ServerStore(settings, location=self.location)
        )
        store.ensure_collection()
        return store

    def cleanup(self) -> None:
        if self.kind == "server":
            client = QdrantClient(url=QDRANT_URL, api_key=QDRANT_API_KEY)
            client.delete_collection(self.collection)
            client.close()


@pytest.fixture(params=["local", "server"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, session_models_dir: Path
) -> Iterator[Target]:
    if request.param == "server" and not QDRANT_URL:
        pytest.skip("QDRANT_URL is not set (see docs/deployment.md to run a Qdrant server)")
    t = Target(request.param, tmp_path, session_models_dir)
    yield t
    t.cleanup()


@pytest.fixture
def store(target: Target) -> Iterator[ServerStore]:
    """Overrides conftest's embedded store for the suite above."""
    opened = target.open()
    yield opened
    opened.close()


@pytest.fixture
def open_backend(target: Target) -> Callable[[], ServerStore]:
    """Overrides the suite's reopen hook: a new client on the same collection."""
    return target.open


def ingest(store: ServerStore, pipeline: EmbeddingPipeline, folder: Path,
           shard: Shard | None = None) -> IngestReport:
    return FolderIngester(store, pipeline).ingest(folder, list(iter_image_files(folder, shard)))


def test_parallel_shard_workers_store_every_image_once(
    target: Target, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
    photo_dir: Path, tmp_path: Path,
) -> None:
    """``ingest --shard i/n`` workers running at once fill one collection exactly."""
    folder = tmp_path / "large"
    shutil.copytree(imagenet_dir, folder / "imagenet")
    shutil.copytree(photo_dir, folder / "photos")
    expected = len(list(iter_image_files(folder)))
    workers = 3
    # local mode allows one client per directory, so its workers share one (locked) store
    shared = target.open() if target.kind == "local" else None
    stores = [shared or target.open() for _ in range(workers)]
    reports: list[IngestReport] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            reports.append(ingest(stores[index], mobilenet_pipeline, folder,
                                  Shard(index, workers)))
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert sum(r.found for r in reports) == expected
        assert sum(r.added for r in reports) == expected
        assert stores[0].count() == expected
    finally:
        for store in {id(s): s for s in stores}.values():
            store.close()


class RecordingClient:
    """Wraps a QdrantClient and records the collection-creating calls."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client
        self.calls: dict[str, list[dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in ("create_collection", "create_payload_index"):
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.setdefault(name, []).append({"args": args, **kwargs})
            return attr(*args, **kwargs)

        return recorded


SERVER_OPTIONS = {"hnsw_m": 32, "hnsw_ef_construct": 200, "quantization": "int8",
                  "shard_number": 2, "replication_factor": 1}


def test_collection_schema_and_server_options_are_requested(tmp_path: Path) -> None:
    """Named cosine vectors, payload indexes, HNSW, int8 quantization, shards and replicas."""
    settings = Settings(data_dir=tmp_path, **{**SERVER_OPTIONS, "replication_factor": 2})
    client = RecordingClient(QdrantClient(location=":memory:"))
    store = ServerStore(settings, client=client)  # type: ignore[arg-type]
    try:
        store.ensure_collection()
        (create,) = client.calls["create_collection"]
        vectors = create["vectors_config"]
        assert {name: (p.size, p.distance) for name, p in vectors.items()} == {
            schema.VECTOR_MOBILENET: (schema.MOBILENET_DIM, qm.Distance.COSINE),
            schema.VECTOR_AUTOENCODER: (settings.latent_dim, qm.Distance.COSINE),
        }
        assert (create["hnsw_config"].m, create["hnsw_config"].ef_construct) == (32, 200)
        assert create["quantization_config"].scalar.type == qm.ScalarType.INT8
        assert (create["shard_number"], create["replication_factor"]) == (2, 2)
        indexes = {c["args"][1]: c["args"][2] for c in client.calls["create_payload_index"]}
        cluster = indexes[schema.PAYLOAD_CLUSTER]
        assert cluster.type == qm.IntegerIndexType.INTEGER
        assert (cluster.lookup, cluster.range) == (True, False)  # matched, never compared
        assert {key for key, params in indexes.items() if params.enable_hnsw} == {
            schema.PAYLOAD_CLUSTER}  # HNSW links for one cluster's searches only
        assert set(indexes) == set(schema.PAYLOAD_INDEXES)
        store.ensure_collection()  # idempotent: nothing created twice
        assert len(client.calls["create_collection"]) == 1
    finally:
        store.close()


def test_default_collection_has_no_quantization(tmp_path: Path) -> None:
    client = RecordingClient(QdrantClient(location=":memory:"))
    store = ServerStore(Settings(data_dir=tmp_path), client=client)  # type: ignore[arg-type]
    try:
        store.ensure_collection()
        (create,) = client.calls["create_collection"]
        assert create["quantization_config"] is None
        assert (create["shard_number"], create["replication_factor"]) == (1, 1)
    finally:
        store.close()


@pytest.mark.skipif(not QDRANT_URL, reason="QDRANT_URL is not set")
def test_real_server_applies_schema_and_options(tmp_path: Path, session_models_dir: Path) -> None:
    target = Target("server", tmp_path, session_models_dir)
    store = target.open(**SERVER_OPTIONS)
    try:
        info = store.client.get_collection(target.collection)
        params = info.config.params
        assert isinstance(params.vectors, dict)
        assert params.vectors[schema.VECTOR_MOBILENET].distance == qm.Distance.COSINE
        assert params.shard_number == 2
        assert info.config.hnsw_config.m == 32
        assert info.config.hnsw_config.ef_construct == 200
        assert info.config.quantization_config is not None
        assert info.payload_schema[schema.PAYLOAD_CLUSTER].data_type == (
            qm.PayloadSchemaType.INTEGER
        )
    finally:
        store.close()
        target.cleanup()
