"""The collection records its schema version; older collections are migrated on open.

The schema-1 fixture is a real collection written by simimg's first release (see
tests/fixtures/schema_v1/README.md); the other cases build a schema-1 collection on every
backend by removing the version record, which is exactly what that release left.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from service.config import Settings
from service.errors import StoreError
from service.locations import Location, folders_of, locations_payload
from service.store import open_store, schema
from service.store.base import StoreBase
from tests.conftest import STORED_VECTOR_ATOL
from tests.processes import REPO, cli_env
from tests.test_store_contract import Backend, make_points
from tests.test_store_contract import backend as backend

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v1"


def as_v1(store: StoreBase) -> None:
    """Make ``store`` look like a first-release collection: no ``locations``, no version."""
    ids = [r.id for page in store.scroll() for r in page]
    store.delete_payload_key(schema.PAYLOAD_LOCATIONS, ids)
    store._write_meta({})


def test_first_release_collection_is_migrated_with_everything_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with tarfile.open(FIXTURE / "edge_v1.tar.gz") as archive:
        archive.extractall(data_dir, filter="data")
    expected_payload = json.loads((FIXTURE / "expected_payload.json").read_text())
    expected = np.load(FIXTURE / "expected_vectors.npz")
    notes: list[str] = []

    store = open_store(Settings(data_dir=data_dir), notify=notes.append)
    try:
        assert store.schema_version() == schema.SCHEMA_VERSION
        assert any("from schema 1 to 2" in note for note in notes)
        records = {r.id: r for page in store.scroll(with_vectors=True) for r in page}
    finally:
        store.close()

    assert set(records) == set(expected_payload) == set(expected["ids"].tolist())
    for row, point_id in enumerate(expected["ids"].tolist()):
        record, old = records[point_id], expected_payload[point_id]
        migrated = dict(record.payload)
        locations = migrated.pop(schema.PAYLOAD_LOCATIONS)
        folders = migrated.pop(schema.PAYLOAD_FOLDERS)  # schema 4, from the locations
        assert migrated == old  # every old key and value kept
        assert locations == [{"root": old["root"], "path": old["path"]}]
        assert folders == folders_of([Location(old["root"], old["path"])])
        np.testing.assert_allclose(
            record.vectors[schema.VECTOR_MOBILENET], expected["mobilenet"][row],
            atol=STORED_VECTOR_ATOL,
        )
        assert (schema.VECTOR_AUTOENCODER in record.vectors) == bool(
            expected["autoencoder_present"][row]
        )

    # A second open finds the current version and changes nothing.
    notes.clear()
    store = open_store(Settings(data_dir=data_dir), notify=notes.append)
    store.close()
    assert notes == []


def test_schema_1_on_every_backend_is_migrated(backend: Backend) -> None:
    store = backend.open()
    assert store.schema_version() == schema.SCHEMA_VERSION  # new collections are stamped
    points = make_points(40)
    for point in points:
        point.payload[schema.PAYLOAD_ROOT] = "/photos"
    store.upsert(points)
    as_v1(store)
    assert store.schema_version() == 1
    store.close()

    reopened = backend.open()
    assert reopened.schema_version() == schema.SCHEMA_VERSION
    for page in reopened.scroll():
        for record in page:
            assert record.payload[schema.PAYLOAD_LOCATIONS] == [
                {"root": "/photos", "path": record.payload[schema.PAYLOAD_PATH]}
            ]
    from service.store.base import PointFilter

    assert reopened.count(PointFilter(location_root="/photos")) == 40
    assert reopened.count(PointFilter(location_root="/elsewhere")) == 0


def test_schema_3_gets_folders_from_its_locations(backend: Backend) -> None:
    store = backend.open()
    points = make_points(12)
    for i, point in enumerate(points):
        point.payload.update(locations_payload([Location("/photos", f"{i % 3}/x/{i}.jpg")]))
    store.upsert(points)
    ids = [p.id for p in points]
    store.delete_payload_key(schema.PAYLOAD_FOLDERS, ids)  # as schema 3 stored them
    store.set_schema_meta(schema_version=3)
    store.close()

    reopened = backend.open()
    assert reopened.schema_version() == schema.SCHEMA_VERSION
    from service.store.base import PointFilter

    assert reopened.count(PointFilter(folder="/photos")) == 12
    assert reopened.count(PointFilter(folder="/photos/1")) == 4
    assert reopened.count(PointFilter(folder="/photos/1/x")) == 4
    assert reopened.count(PointFilter(folder="/photo")) == 0


def test_a_newer_schema_is_refused_and_left_untouched(backend: Backend) -> None:
    store = backend.open()
    store.upsert(make_points(5))
    store.set_schema_meta(schema_version=schema.SCHEMA_VERSION + 1)
    store.close()
    refused = backend.create()
    with pytest.raises(StoreError, match=r"newer than this simimg's .* upgrade simimg"):
        refused.ensure_collection()
    refused.close()
    check = backend.create()
    check.ensure_collection = lambda: None  # type: ignore[method-assign]
    assert check.count() == 5
    assert check.schema_version() == schema.SCHEMA_VERSION + 1


_MIGRATE_IN_CHILD = """
import sys
from service.config import Settings
from service.store import open_store
open_store(Settings(data_dir=sys.argv[1], latent_dim=16), notify=lambda m: print(m, flush=True))
"""


def _migrated_count(settings: Settings) -> int:
    """Points that already have ``locations``, read without running any migration."""
    from service.store.edge import EdgeStore

    raw = EdgeStore(settings)  # no ensure_collection: the shard is opened as it is
    try:
        return sum(
            schema.PAYLOAD_LOCATIONS in r.payload for page in raw.scroll() for r in page
        )
    finally:
        raw.close()


def test_a_migration_killed_half_way_completes_on_the_next_open(tmp_path: Path) -> None:
    """kill -9 during a schema migration, then open again: every point is migrated."""
    total = 20_000
    settings = Settings(data_dir=tmp_path / "data", latent_dim=16)
    store = open_store(settings)
    points = make_points(total, clusters=None)
    for point in points:
        point.payload[schema.PAYLOAD_ROOT] = "/photos"
    store.upsert(points)
    as_v1(store)
    store.close()

    child = subprocess.Popen(
        [sys.executable, "-c", _MIGRATE_IN_CHILD, str(settings.data_dir)],
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    assert "migrating" in child.stdout.readline()
    time.sleep(0.5)  # the migration of 20,000 points takes about 3 s here
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert 0 < _migrated_count(settings) < total  # the kill landed mid-migration

    store = open_store(settings)
    try:
        assert store.schema_version() == schema.SCHEMA_VERSION
        assert store.count() == total
        assert _all_located(store)
    finally:
        store.close()


def _all_located(store: StoreBase) -> bool:
    return all(
        r.payload.get(schema.PAYLOAD_LOCATIONS)
        == [{"root": "/photos", "path": r.payload[schema.PAYLOAD_PATH]}]
        for page in store.scroll()
        for r in page
    )
