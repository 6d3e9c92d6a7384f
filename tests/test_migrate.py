"""Migrating between the embedded store and a Qdrant server keeps every id, vector, payload.

qdrant-client's local mode (``path:DIR``) stands in for the server; when ``QDRANT_URL`` is
set, the round trip also runs against that real server.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from service.config import Settings
from service.errors import ConfigError
from service.migrate import MigrationError, copy_points, open_embedded, open_remote
from service.store import PointRecord, VectorStore
from tests.conftest import STORED_VECTOR_ATOL
from tests.test_store_contract import LATENT, make_points

QDRANT_URL = os.environ.get("QDRANT_URL")


def mixed_points() -> list[PointRecord]:
    """Points with and without autoencoder vectors and cluster labels, nested payloads."""
    points = make_points(300, seed=1) + make_points(45, seed=2, with_ae=False, clusters=None)
    for i, point in enumerate(points[:10]):
        point.payload["tags"] = {"list": [i, "x"], "nested": {"ok": i % 2 == 0}}
    return points


def snapshot(store: VectorStore) -> dict[str, PointRecord]:
    return {r.id: r for page in store.scroll(with_vectors=True) for r in page}


def assert_same_points(got: dict[str, PointRecord], want: dict[str, PointRecord]) -> None:
    assert got.keys() == want.keys()
    for pid, expected in want.items():
        actual = got[pid]
        assert actual.payload == expected.payload
        assert actual.vectors.keys() == expected.vectors.keys()
        for name, vector in expected.vectors.items():
            # Each store renormalises (cosine) and may round to float16 on the way in.
            np.testing.assert_allclose(actual.vectors[name], vector, rtol=0,
                                       atol=STORED_VECTOR_ATOL)


def settings_at(path: Path, collection: str = "images") -> Settings:
    return Settings(data_dir=path, latent_dim=LATENT, collection=collection,
                    qdrant_api_key=os.environ.get("QDRANT_API_KEY"))


@pytest.fixture(params=["local", pytest.param("server", marks=pytest.mark.skipif(
    not QDRANT_URL, reason="set QDRANT_URL to also test against a real Qdrant server"))])
def remote_address(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """``path:DIR`` (qdrant-client local mode) or the real server's URL."""
    if request.param == "local":
        yield f"path:{tmp_path / 'qdrant-local'}"
    else:
        assert QDRANT_URL
        yield QDRANT_URL


def test_round_trip_embedded_to_server_and_back_keeps_everything(
    tmp_path: Path, remote_address: str
) -> None:
    collection = f"migrate-{uuid.uuid4().hex[:8]}"
    points = mixed_points()
    first = open_embedded(settings_at(tmp_path / "one", collection))
    first.upsert(points)
    original = snapshot(first)
    assert len(original) == 345

    progress: list[int] = []
    remote = open_remote(settings_at(tmp_path / "one", collection), remote_address)
    try:
        report = copy_points(first, remote, batch_size=100, on_progress=progress.append)
        assert (report.copied, report.source_count, report.target_count) == (345, 345, 345)
        assert progress == [100, 100, 100, 45]
        assert_same_points(snapshot(remote), original)

        second = open_embedded(settings_at(tmp_path / "two", collection))
        try:
            back = copy_points(remote, second, batch_size=64)
            assert back.target_count == 345
            assert_same_points(snapshot(second), original)
            # a migrated collection is a working one: same neighbours for the same query
            query = points[7].vectors["mobilenet"]
            assert [h.id for h in second.search(query, "mobilenet", 10)] == [
                h.id for h in first.search(query, "mobilenet", 10)
            ]
        finally:
            second.close()
    finally:
        first.close()
        if remote_address.startswith("http"):
            remote.client.delete_collection(collection)  # type: ignore[attr-defined]
        remote.close()


def test_rerun_after_interruption_completes_and_verifies(tmp_path: Path) -> None:
    source = open_embedded(settings_at(tmp_path / "src"))
    target = open_remote(settings_at(tmp_path / "src"), f"path:{tmp_path / 'dst'}")
    try:
        points = make_points(50, seed=3)
        source.upsert(points)
        target.upsert(points[:20])  # what an interrupted run left behind
        report = copy_points(source, target)
        assert (report.copied, report.target_count) == (50, 50)
    finally:
        source.close()
        target.close()


def test_target_with_foreign_points_fails_verification(tmp_path: Path) -> None:
    source = open_embedded(settings_at(tmp_path / "src"))
    target = open_remote(settings_at(tmp_path / "src"), f"path:{tmp_path / 'dst'}")
    try:
        source.upsert(make_points(30, seed=4))
        target.upsert(make_points(5, seed=5))
        with pytest.raises(MigrationError, match="5 more than the source"):
            copy_points(source, target)
    finally:
        source.close()
        target.close()


@pytest.mark.parametrize("address", ["localhost:6333", "path:", "ftp://x"])
def test_bad_address_is_a_clear_error(tmp_path: Path, address: str) -> None:
    with pytest.raises(ConfigError):
        open_remote(settings_at(tmp_path), address)


def test_cli_migrate_to_and_from(tmp_path: Path) -> None:
    data_one, data_two = tmp_path / "one", tmp_path / "two"
    store = open_embedded(settings_at(data_one))
    store.upsert(mixed_points())
    original = snapshot(store)
    store.close()
    local = f"path:{tmp_path / 'qdrant-local'}"
    runner = CliRunner()
    env = {"QDRANT_URL": "http://must-be-ignored:1", "SIMIMG_LATENT_DIM": str(LATENT)}

    result = runner.invoke(
        app, ["--data-dir", str(data_one), "migrate", "--to", local, "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"copied": 345, "source_count": 345, "target_count": 345}

    result = runner.invoke(
        app, ["--data-dir", str(data_two), "migrate", "--from", local, "--batch-size", "50"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "counts and ids match" in result.stderr
    store = open_embedded(settings_at(data_two))
    try:
        assert_same_points(snapshot(store), original)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "exactly one"), (["--to", "path:/a", "--from", "path:/b"], "exactly one"),
     (["--to", "qdrant:6333"], "not a Qdrant address")],
)
def test_cli_migrate_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "migrate", *args], env={"QDRANT_URL": ""}
    )
    assert result.exit_code != 0
    assert message in result.stderr
