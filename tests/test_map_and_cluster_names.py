"""`simimg-admin map`, cluster cards and cluster names, on 20 real ImageNet photos.

The photos are ingested once per module and labelled with the real ``apply_labels`` (8 + 7
+ 5 noise by sorted file name, as the page tests do); each test works on a copy of that
data dir so names and positions written by one test never leak into another.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.runner import FolderIngester
from service.cluster_labels import apply_labels, list_clusters
from service.cluster_names import cluster_names, name_cluster, resolve_cluster
from service.cluster_overview import cluster_cards, compute_cards
from service.config import Settings
from service.errors import ConfigError
from service.map_layout import fit_unit_square, layout, read_map
from service.pipeline import EmbeddingPipeline
from service.search import Searcher
from service.store import open_store
from service.store.base import PointFilter, VectorStore
from service.store.schema import VECTOR_MOBILENET
from service.walker import iter_image_files
from tests.conftest import make_settings
from tests.processes import run_admin

LABELS = [0] * 8 + [1] * 7 + [-1] * 5


@pytest.fixture(scope="module")
def labelled_dir(tmp_path_factory: pytest.TempPathFactory, session_models_dir: Path,
                 imagenet_dir: Path, mobilenet_pipeline: EmbeddingPipeline) -> Path:
    """A data dir holding the 20 photos, labelled into clusters 0, 1 and noise."""
    data = tmp_path_factory.mktemp("named") / "data"
    settings = make_settings(data, session_models_dir)
    store = open_store(settings)
    try:
        FolderIngester(store, mobilenet_pipeline).ingest(
            imagenet_dir, list(iter_image_files(imagenet_dir)))
        by_path = {r.payload["path"]: r.id for page in store.scroll() for r in page}
        names = sorted(by_path)
        apply_labels(store, [by_path[n] for n in names], np.asarray(LABELS))
    finally:
        store.close()
    return data


@pytest.fixture
def labelled(labelled_dir: Path, tmp_path: Path, session_models_dir: Path) -> Settings:
    """Settings of a private copy of the labelled data dir."""
    copy = tmp_path / "data"
    shutil.copytree(labelled_dir, copy, symlinks=True)
    return make_settings(copy, session_models_dir)


def _members(store: VectorStore, label: int) -> set[str]:
    return {r.id for page in store.scroll(where=PointFilter(cluster=label)) for r in page}


def _payloads(store: VectorStore) -> dict[str, dict]:
    return {r.id: r.payload for page in store.scroll() for r in page}


def test_map_command_places_every_image_in_the_unit_square(labelled: Settings) -> None:
    done = run_admin(labelled, "map", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["points"] == 20 and report["method"] == "pca"  # tiny: PCA
    store = open_store(labelled)
    try:
        points = read_map(store)
        payloads = _payloads(store)
    finally:
        store.close()
    assert len(points.ids) == 20 and points.unplaced == 0
    assert points.xy.min() >= 0.0 and points.xy.max() <= 1.0
    assert np.isclose(np.ptp(points.xy, axis=0).max(), 1.0, atol=1e-4)  # the map fills it
    labels = {pid: p["cluster"] for pid, p in payloads.items()}
    assert {pid: int(c) for pid, c in zip(points.ids, points.clusters, strict=True)} == labels
    assert all(isinstance(p["map_x"], float) for p in payloads.values())

    bad = run_admin(labelled, "map", "--method", "tsne")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: --method must be one of auto, umap, pca, got 'tsne'"]


def test_layout_is_pca_for_tiny_collections_and_fills_the_square() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 64))
    vectors = np.concatenate([centres[0] + 0.01 * rng.normal(size=(10, 64)),
                              centres[1] + 0.01 * rng.normal(size=(10, 64))])
    xy = layout(vectors)
    assert xy.shape == (20, 2) and xy.min() >= 0 and xy.max() <= 1
    # two tight groups end up far apart: every within-group distance < the gap between them
    within = max(np.ptp(xy[:10], axis=0).max(), np.ptp(xy[10:], axis=0).max())
    gap = np.linalg.norm(xy[:10].mean(axis=0) - xy[10:].mean(axis=0))
    assert within < 0.1 and gap > 0.8
    assert np.allclose(fit_unit_square(np.array([[2.0, 5.0], [4.0, 5.0]])),
                       [[0.0, 0.5], [1.0, 0.5]])
    with pytest.raises(ConfigError, match="--method umap needs more than 16 images"):
        layout(vectors[:5], "umap")


def test_cluster_cards_show_the_medoid_and_its_nearest_images(labelled: Settings) -> None:
    store = open_store(labelled)
    try:
        cards = cluster_cards(labelled, store)
        assert [(c.cluster, c.size) for c in cards] == [(0, 8), (1, 7), (-1, 5)]
        vectors = {r.id: r.vectors[VECTOR_MOBILENET] for page in store.scroll(
            with_vectors=[VECTOR_MOBILENET]) for r in page}
        for card in cards:
            members = sorted(_members(store, card.cluster))
            unit = np.stack([vectors[m] / np.linalg.norm(vectors[m]) for m in members])
            summed = (unit @ unit.T).sum(axis=1)  # each image's similarity to its cluster
            medoid = members[int(np.argmax(summed))]
            assert card.representatives[0] == medoid
            to_medoid = {m: float(unit[i] @ unit[members.index(medoid)])
                         for i, m in enumerate(members)}
            rest = sorted((m for m in members if m != medoid), key=lambda m: -to_medoid[m])
            assert card.representatives[1:] == rest[:5]
        # cached per run and labelled count: a second call reads the cache, same cards
        cache = labelled.state_dir / f"{labelled.collection}.cluster_cards.json"
        assert cache.is_file()
        assert cluster_cards(labelled, store) == cards == compute_cards(store)
    finally:
        store.close()


def test_a_named_cluster_is_found_by_name_everywhere_until_the_next_run(
    labelled: Settings, imagenet_dir: Path, mobilenet_pipeline: EmbeddingPipeline
) -> None:
    store = open_store(labelled)
    try:
        wheels = _members(store, 1)
        name_cluster(labelled, store, 1, "  things   with wheels ")
        assert cluster_names(labelled) == {1: "things with wheels"}
        named = {pid for pid, p in _payloads(store).items() if "cluster_name" in p}
        assert named == wheels
        assert store.count(PointFilter(cluster=1)) == len(wheels)
        assert resolve_cluster(labelled, "Things With Wheels") == 1
        assert resolve_cluster(labelled, "-1") == -1 and resolve_cluster(labelled, "all") is None
        with pytest.raises(ConfigError, match=r"got 'boats' \(names: things with wheels\)"):
            resolve_cluster(labelled, "boats")
        for label, bad in [(0, "things with wheels"), (0, "12"), (-1, "noise"), (7, "x")]:
            with pytest.raises(ConfigError):
                name_cluster(labelled, store, label, bad)
        results = Searcher(store, mobilenet_pipeline).search(
            imagenet_dir / "imagenet_00_243.jpg", k=5, cluster=resolve_cluster(
                labelled, "things with wheels"))
        assert len(results) == 5
        assert {r.cluster for r in results} == {1}
        assert {r.cluster_name for r in results} == {"things with wheels"}
        assert [c.name for c in list_clusters(store)] == [None, "things with wheels", None]
    finally:
        store.close()

    done = run_admin(labelled, "search", str(imagenet_dir / "imagenet_00_243.jpg"),
                     "--cluster", "things with wheels", "--k", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("1 (things with wheels)") == 3
    unknown = run_admin(labelled, "search", str(imagenet_dir / "imagenet_00_243.jpg"),
                        "--cluster", "boats")
    assert unknown.returncode == 1 and "got 'boats'" in unknown.stderr

    store = open_store(labelled)
    try:  # a new labelling: the old names are wrong now, and all of them go
        ids = sorted(_payloads(store))
        apply_labels(store, ids, np.asarray([0] * 10 + [1] * 10))
        assert not any("cluster_name" in p for p in _payloads(store).values())
    finally:
        store.close()


def test_rest_search_takes_a_cluster_name(labelled: Settings) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.service import SimimgService

    service = SimimgService(labelled)
    try:
        name_cluster(labelled, service.store, 0, "pets")
        query = next(iter(_members(service.store, 1)))
        with TestClient(create_app(service, with_page=False)) as client:
            answer = client.get(f"/api/v1/points/{query}/similar",
                                params={"cluster": "pets", "k": 4})
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            assert len(results) == 4
            assert {(r["cluster"], r["cluster_name"]) for r in results} == {(0, "pets")}
            wrong = client.get(f"/api/v1/points/{query}/similar", params={"cluster": "boats"})
            assert wrong.status_code == 400 and "boats" in wrong.json()["message"]
            listed = client.get("/api/v1/clusters").json()["clusters"]
            assert [(c["cluster"], c["name"]) for c in listed] == [(0, "pets"), (1, None),
                                                                  (-1, None)]
    finally:
        service.close()
