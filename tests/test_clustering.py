"""Clustering on real photos with known groups: labels, filtered search, re-runs, crashes.

Fixture (``groups_dir``): 6 of the 20 foolbox ImageNet photos (each a different ImageNet
class) each give 6 edited copies (random crop of 55-90% of the area, flip, brightness /
contrast / colour jitter, resize, JPEG re-encoding): 6 known groups of 6. The other 14
photos are added once each: unrelated images that belong to no group, i.e. DBSCAN noise.
Edited copies of one photo are what a user expects to find grouped (near-duplicates in a
camera roll), and 14 different ImageNet classes are as unrelated as real photos get, so
the expected partition is unambiguous; chance level is ARI 0.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from ingest.runner import FolderIngester
from service import cluster_labels, clustering_runs
from service.cluster_labels import (
    cluster_collection,
    export_labels,
    finish_pending_run,
    list_clusters,
    read_vectors,
)
from service.clustering.dbscan import dbscan_cosine
from service.clustering.eps import density_eps, kth_neighbour_distances
from service.clustering.results import cluster_sizes, relabel_by_size
from service.clustering.vectors import cluster_vectors, unit_rows
from service.config import Settings
from service.pipeline import EmbeddingPipeline
from service.search import Searcher
from service.store import open_store
from service.store.base import PointFilter, VectorStore
from service.walker import iter_image_files
from tests.conftest import make_settings

GROUPS, COPIES, MIN_SAMPLES = 6, 6, 3


def _edited(image: Image.Image, rng: random.Random) -> Image.Image:
    width, height = image.size
    area = rng.uniform(0.55, 0.9)
    cw, ch = int(width * area**0.5), int(height * area**0.5)
    x, y = rng.randint(0, width - cw), rng.randint(0, height - ch)
    out = image.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhance(out).enhance(rng.uniform(0.8, 1.2))
    scale = rng.uniform(0.5, 0.9)
    return out.resize((int(cw * scale), int(ch * scale)), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def groups_dir(imagenet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``g<i>_<j>.jpg``: copy j of group i; ``single_<name>``: an unrelated photo."""
    dest = tmp_path_factory.mktemp("groups")
    photos = sorted(imagenet_dir.glob("*.jpg"))
    rng = random.Random(5)
    for i, photo in enumerate(photos[:GROUPS]):
        with Image.open(photo) as original:
            rgb = original.convert("RGB")
        for j in range(COPIES):
            _edited(rgb, rng).save(dest / f"g{i}_{j}.jpg", quality=rng.randint(70, 90))
    for photo in photos[GROUPS:]:
        (dest / f"single_{photo.name}").write_bytes(photo.read_bytes())
    return dest


def _truth(path: str) -> str:
    """Known group of a file; every unrelated photo is its own group."""
    return path.split("_")[0] if path.startswith("g") else path


def _labels_by_path(store: VectorStore) -> dict[str, int | None]:
    return {r.payload["path"]: r.payload.get("cluster") for page in store.scroll() for r in page}


def _ari(found: dict[str, int | None]) -> float:
    """ARI with every noise point as its own singleton (as the truth treats unrelated photos)."""
    paths = sorted(found)
    predicted = [f"c{found[p]}" if found[p] is not None and found[p] >= 0 else p for p in paths]
    return adjusted_rand_score([_truth(p) for p in paths], predicted)


@pytest.fixture(scope="module")
def grouped_template(
    groups_dir: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A data dir holding the ingested fixture; each test works on its own copy."""
    data_dir = tmp_path_factory.mktemp("grouped") / "data"
    store = open_store(make_settings(data_dir, session_models_dir))
    try:
        report = FolderIngester(store, mobilenet_pipeline).ingest(
            groups_dir, list(iter_image_files(groups_dir))
        )
    finally:
        store.close()
    assert report.added == GROUPS * COPIES + 20 - GROUPS
    return data_dir


@pytest.fixture
def settings(tmp_path: Path, session_models_dir: Path, grouped_template: Path) -> Settings:
    """Overrides conftest's: a fresh copy of the ingested fixture."""
    data_dir = tmp_path / "data"
    shutil.copytree(grouped_template, data_dir, symlinks=True)
    return make_settings(data_dir, session_models_dir)


@pytest.fixture
def grouped_store(store: VectorStore) -> VectorStore:
    return store


def test_dbscan_finds_the_known_groups_and_labels_the_payload(
    settings: Settings, grouped_store: VectorStore, record_property: pytest.FixtureRequest
) -> None:
    run = cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    found = _labels_by_path(grouped_store)
    ari = _ari(found)
    record_property("ari", ari)
    print(f"ARI {ari:.3f}, eps {run.result.eps:.4f} ({run.result.eps_reason})")
    assert ari > 0.9  # chance is 0
    assert run.result.n_clusters == GROUPS
    assert all(found[p] == -1 for p in found if p.startswith("single_"))  # noise is -1
    grouped = [label for p, label in found.items() if p.startswith("g")]
    assert all(label is not None for label in grouped)
    assert sum(label >= 0 for label in grouped) >= 0.9 * len(grouped)  # few copies are noise
    for label, size in run.result.sizes():
        assert grouped_store.count(PointFilter(cluster=label)) == size
    assert grouped_store.count(PointFilter(cluster=-1)) == run.result.n_noise
    assert grouped_store.count(PointFilter(unlabelled=True)) == 0
    record = clustering_runs.current_run(settings)
    assert record is not None and record["run_id"] == run.record["run_id"]
    assert (record["clusters"], record["noise"], record["min_samples"], record["space"]) == (
        GROUPS, run.result.n_noise, MIN_SAMPLES, "mobilenet")


def test_eps_in_the_gap_recovers_the_groups_exactly(
    settings: Settings, grouped_store: VectorStore
) -> None:
    """Copies sit within cosine distance ~0.1 of each other, unrelated photos ~0.4 apart."""
    run = cluster_collection(settings, grouped_store, eps=0.25, min_samples=MIN_SAMPLES)
    assert _ari(_labels_by_path(grouped_store)) == 1.0
    assert (run.result.n_clusters, run.result.n_noise) == (GROUPS, 20 - GROUPS)


def test_hdbscan_alternative_finds_the_groups(
    settings: Settings, grouped_store: VectorStore
) -> None:
    run = cluster_collection(settings, grouped_store, algorithm="hdbscan",
                             min_samples=MIN_SAMPLES)
    ari = _ari(_labels_by_path(grouped_store))
    print(f"HDBSCAN ARI {ari:.3f}")
    assert ari > 0.8 and run.record["algorithm"] == "hdbscan"


def test_filtered_search_returns_only_that_cluster(
    settings: Settings, grouped_store: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    groups_dir: Path,
) -> None:
    cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    found = _labels_by_path(grouped_store)
    searcher = Searcher(grouped_store, mobilenet_pipeline)
    for group in range(GROUPS):
        label = found[f"g{group}_0.jpg"]
        assert label is not None
        results = searcher.search(groups_dir / f"g{group}_0.jpg", k=50, cluster=label)
        members = {p for p, c in found.items() if c == label}
        assert {r.path for r in results} == members
        assert all(r.cluster == label for r in results)


def test_reclustering_replaces_every_label(
    settings: Settings, grouped_store: VectorStore
) -> None:
    first = cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    ids = [r.id for page in grouped_store.scroll() for r in page]
    grouped_store.set_payload({"cluster": 99}, ids[:3])  # a stale label from elsewhere
    second = cluster_collection(settings, grouped_store, eps=0.001, min_samples=MIN_SAMPLES)
    assert second.result.n_clusters == 0
    assert set(_labels_by_path(grouped_store).values()) == {-1}
    record = clustering_runs.current_run(settings)
    assert record is not None
    assert record["run_id"] == second.record["run_id"] != first.record["run_id"]
    assert record["eps"] == 0.001 and "pending_run_id" not in record


def test_images_added_after_a_run_are_unlabelled_until_the_next(
    settings: Settings, grouped_store: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    photo_dir: Path,
) -> None:
    cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    report = FolderIngester(grouped_store, mobilenet_pipeline).ingest(
        photo_dir, list(iter_image_files(photo_dir))
    )
    assert grouped_store.count(PointFilter(unlabelled=True)) == report.added > 0
    cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    assert grouped_store.count(PointFilter(unlabelled=True)) == 0


class Killed(BaseException):
    """Stands in for the process being killed mid-run."""


def test_run_killed_before_commit_leaves_previous_labels(
    settings: Settings, grouped_store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    before = _labels_by_path(grouped_store)

    def killed(*args: object) -> None:
        raise Killed

    monkeypatch.setattr(clustering_runs, "commit_run", killed)
    with pytest.raises(Killed):
        cluster_collection(settings, grouped_store, eps=0.001, min_samples=MIN_SAMPLES)
    assert _labels_by_path(grouped_store) == before
    assert clustering_runs.current_run(settings) == first.record
    monkeypatch.undo()
    assert finish_pending_run(settings, grouped_store) is None  # nothing to roll forward
    assert not list(settings.state_dir.glob("*.npz"))  # the orphan stage is cleaned up


def test_run_killed_while_writing_labels_is_rolled_forward(
    settings: Settings, grouped_store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    real_set_payload = grouped_store.set_payload
    calls = {"n": 0}

    def dies_on_second_batch(payload: dict, ids: list[str]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed
        real_set_payload(payload, ids)

    monkeypatch.setattr(grouped_store, "set_payload", dies_on_second_batch)
    monkeypatch.setattr(cluster_labels, "LABEL_BATCH", 10)
    with pytest.raises(Killed):
        cluster_collection(settings, grouped_store, eps=0.001, min_samples=MIN_SAMPLES)
    monkeypatch.undo()
    pending = clustering_runs.current_run(settings)
    assert pending is not None and "pending_run_id" in pending  # status can tell
    record = finish_pending_run(settings, grouped_store)  # what the next run/open does
    assert record is not None and record["run_id"] == pending["pending_run_id"]
    assert set(_labels_by_path(grouped_store).values()) == {-1}  # all new, none old
    assert clustering_runs.current_run(settings) == record


@pytest.mark.parametrize("max_edges", [40_000_000, 0], ids=["kept-pairs", "recompute"])
def test_chunked_dbscan_matches_sklearn_on_real_embeddings(
    grouped_store: VectorStore, monkeypatch: pytest.MonkeyPatch, max_edges: int
) -> None:
    _, vectors = read_vectors(grouped_store, "mobilenet")
    x = unit_rows(vectors)
    monkeypatch.setattr("service.clustering.dbscan._CHUNK_CELLS", 7 * len(x))  # many small chunks
    monkeypatch.setattr("service.clustering.dbscan._MAX_EDGES", max_edges)
    for eps in (0.15, 0.3, 0.45, 0.6):
        for min_samples in (2, 3, 5):
            ours = dbscan_cosine(x, eps, min_samples)
            ref = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(x)
            core = np.zeros(len(x), bool)
            core[ref.core_sample_indices_] = True
            np.testing.assert_array_equal(ours == -1, ref.labels_ == -1)
            assert adjusted_rand_score(ours[core], ref.labels_[core]) == 1.0


def test_auto_eps_never_chains_most_points_into_one_cluster(grouped_store: VectorStore) -> None:
    """The sampled-silhouette rule rejects every eps whose largest cluster holds more than
    half of the points, on the real fixture exactly (it is smaller than the sample) and
    when only part of it is sampled; and explains its choice."""
    ids, vectors = read_vectors(grouped_store, "mobilenet")
    path_of = {r.id: r.payload["path"] for page in grouped_store.scroll() for r in page}
    x = unit_rows(vectors)
    choice = density_eps(x, MIN_SAMPLES)
    assert choice.candidates and "quantile" in choice.reason
    for candidate in choice.candidates:  # the sample is every row: shares are exact
        labels = dbscan_cosine(x, candidate.eps, MIN_SAMPLES)
        biggest = max((size for _, size in cluster_sizes(labels)), default=0)
        assert (biggest <= 0.5 * len(x)) == (candidate.largest <= 0.5)
    labels = dbscan_cosine(x, choice.eps, MIN_SAMPLES)
    assert max(size for _, size in cluster_sizes(labels)) <= 0.5 * len(x)
    assert _ari({path_of[i]: int(c) for i, c in zip(ids, labels, strict=True)}) > 0.9
    sampled = density_eps(x, MIN_SAMPLES, sample=40)  # 40 of the 50 rows
    assert "sampled points" in sampled.reason
    curve = kth_neighbour_distances(x, MIN_SAMPLES, 40)  # k-distances to all rows
    assert sampled.eps in [pytest.approx(float(np.quantile(curve, c.quantile)))
                           for c in sampled.candidates]
    labels = dbscan_cosine(x, sampled.eps, MIN_SAMPLES)
    assert max(size for _, size in cluster_sizes(labels)) <= 0.5 * len(x)


def test_auto_eps_falls_back_to_the_knee_without_structure() -> None:
    """One tight blob: every candidate makes one cluster, so the knee rule decides."""
    rng = np.random.default_rng(0)
    x = unit_rows(np.ones((60, 16)) + rng.normal(0, 1e-3, (60, 16)))
    choice = density_eps(x, 5)
    assert "fell back to the knee" in choice.reason and 0 < choice.eps < 2
    assert all(c.clusters <= 1 for c in choice.candidates)


def test_pca_reduction_keeps_the_groups(grouped_store: VectorStore) -> None:
    _, vectors = read_vectors(grouped_store, "mobilenet")
    full = cluster_vectors(vectors, eps="auto", min_samples=MIN_SAMPLES, dims=None)
    reduced = cluster_vectors(vectors, eps="auto", min_samples=MIN_SAMPLES, dims=32)
    assert reduced.dims == 32 and 0 < (reduced.explained_variance or 0) <= 1
    assert adjusted_rand_score(full.labels, reduced.labels) > 0.9


def test_relabel_by_size_numbers_largest_first() -> None:
    labels = relabel_by_size(np.array([7, 7, -1, 3, 3, 3, 9]))
    assert labels.tolist() == [1, 1, -1, 0, 0, 0, 2]


def test_listing_and_export(
    settings: Settings, grouped_store: VectorStore, tmp_path: Path
) -> None:
    run = cluster_collection(settings, grouped_store, eps="auto", min_samples=MIN_SAMPLES)
    listing = list_clusters(grouped_store, examples=2)
    assert [(c.cluster, c.size) for c in listing if c.cluster >= 0] == run.result.sizes()
    assert listing[-1].cluster == -1 and listing[-1].size == run.result.n_noise
    assert all(len(c.examples) == 2 and Path(c.examples[0]).is_file() for c in listing)
    csv_path = tmp_path / "labels.csv"
    assert export_labels(grouped_store, csv_path) == grouped_store.count()
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "id,path,root,cluster" and len(lines) == grouped_store.count() + 1


def test_cli_cluster_and_clusters(settings: Settings, tmp_path: Path) -> None:
    from cli.main import app

    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "--qdrant-url", ""]
    result = runner.invoke(app, [*base, "clusters"])
    assert result.exit_code == 1 and "never clustered" in result.output
    result = runner.invoke(app, [*base, "cluster", "--min-samples", str(MIN_SAMPLES)])
    assert result.exit_code == 0, result.output
    assert f"estimated clusters: {GROUPS}" in result.output and "eps = " in result.output
    csv_path = tmp_path / "labels.csv"
    result = runner.invoke(app, [*base, "clusters", "--export", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert "noise (-1)" in result.output and csv_path.is_file()
    result = runner.invoke(app, [*base, "cluster", "--eps", "often"])
    assert result.exit_code == 1 and "--eps" in result.output
    assert len(result.output.strip().splitlines()) == 1
