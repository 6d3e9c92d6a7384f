"""The autoencoder space in-process, on real images (foolbox's ImageNet/CIFAR/MNIST samples)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.datasets import foolbox_dir
from ingest.runner import FolderIngester
from service.autoencoder.config import AutoencoderConfig
from service.autoencoder.files import (
    CURRENT,
    PENDING,
    current_model_info,
    read_pointer,
    write_pointer,
)
from service.autoencoder.preprocess import to_model_input
from service.config import Settings
from service.embedders.autoencoder import load_autoencoder_embedder, require_autoencoder_embedder
from service.embedders.base import l2_normalise
from service.errors import ModelNotTrainedError
from service.pipeline import EmbeddingPipeline
from service.store import open_store
from service.store.base import PointFilter, VectorStore
from service.store.schema import VECTOR_AUTOENCODER
from service.walker import iter_image_files
from training.checkpoint import write_checkpoint
from training.data import TrainingSet, files_in_folder, load_training_set
from training.driver import train_and_activate
from training.loop import TrainConfig, TrainResult, train_autoencoder

SIZE = 32  # small images keep each test to seconds on 2 cores
SMALL = AutoencoderConfig(image_size=SIZE, latent_dim=256)


@pytest.fixture(scope="module")
def foolbox_set() -> TrainingSet:
    """All 100 foolbox samples (ImageNet JPEGs, CIFAR, MNIST, Fashion-MNIST PNGs)."""
    settings = Settings()
    data = load_training_set(files_in_folder(foolbox_dir()), SIZE, settings)
    assert len(data) >= 90 and not data.skipped
    return data


@pytest.fixture(scope="module")
def trained(foolbox_set: TrainingSet) -> TrainResult:
    return train_autoencoder(foolbox_set.pixels, SMALL, TrainConfig(epochs=4, patience=10))


def test_training_a_few_epochs_lowers_validation_loss(trained: TrainResult) -> None:
    assert len(trained.history) == 4
    assert trained.best_epoch >= 1
    assert trained.best_val_loss < 0.97 * trained.initial_val_loss
    assert trained.history[-1].val_loss < trained.initial_val_loss


def _neighbour_sets(vectors: np.ndarray, k: int = 5) -> list[set[int]]:
    unit = l2_normalise(np.asarray(vectors, np.float32))
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return [set(row) for row in np.argsort(-similarity, axis=1)[:, :k]]


def _agreement(model: Any, pixels: np.ndarray, teacher_sets: list[set[int]]) -> float:
    """Mean share of each image's 5 nearest latents that are among the teacher's 5."""
    with torch.inference_mode():
        latents = model.encode(torch.from_numpy(to_model_input(pixels))).numpy()
    return float(np.mean([len(a & b) / 5 for a, b in
                          zip(_neighbour_sets(latents), teacher_sets, strict=True)]))


def test_the_teacher_term_is_trained_and_judged_on(
    foolbox_set: TrainingSet, trained: TrainResult, mobilenet_pipeline: EmbeddingPipeline
) -> None:
    """With the images' MobileNet vectors as targets, validation (early stopping, the kept
    checkpoint) follows the whole objective, and the latent's neighbours move towards the
    teacher's."""
    by_digest = {}
    for path in files_in_folder(foolbox_dir()):
        item = mobilenet_pipeline.prepare_file(path)
        by_digest[item.sha256] = item
    items = [by_digest[digest] for digest in foolbox_set.digests]
    targets = mobilenet_pipeline.embed(items, ["mobilenet"])["mobilenet"]
    config = TrainConfig(epochs=4, patience=10)
    taught = train_autoencoder(foolbox_set.pixels, SMALL, config, targets=targets)
    # an untrained head is unrelated to the targets: the objective starts near
    # reconstruction + distill x 1, and training lowers it
    assert taught.initial_val_loss > trained.initial_val_loss + 0.5 * config.distill
    assert taught.best_val_loss < 0.8 * taught.initial_val_loss
    teacher_sets = _neighbour_sets(targets)
    assert _agreement(taught.model, foolbox_set.pixels, teacher_sets) > _agreement(
        trained.model, foolbox_set.pixels, teacher_sets) + 0.03  # measured 0.168 -> 0.226


def test_same_seed_same_model(foolbox_set: TrainingSet) -> None:
    config = TrainConfig(epochs=1, seed=7)
    pixels = foolbox_set.pixels[:40]
    first = train_autoencoder(pixels, SMALL, config).model.state_dict()
    second = train_autoencoder(pixels, SMALL, config).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_checkpoint_reloads_to_identical_embeddings(
    tmp_path: Path, trained: TrainResult, foolbox_set: TrainingSet
) -> None:
    settings = Settings(data_dir=tmp_path)
    assert load_autoencoder_embedder(settings) is None
    assert current_model_info(settings) is None
    with pytest.raises(ModelNotTrainedError, match="simimg-admin train"):
        require_autoencoder_embedder(settings)

    version = write_checkpoint(settings, trained.model, {"config": SMALL.to_dict()},
                               trained.history)
    write_pointer(settings, CURRENT, version)
    embedder = load_autoencoder_embedder(settings)
    assert embedder is not None
    assert (embedder.space, embedder.dim, embedder.model_id) == ("autoencoder", 256, version)

    images = [Image.fromarray(p) for p in foolbox_set.pixels[:16]]
    batch = np.stack([embedder.preprocess(im) for im in images])
    with torch.inference_mode():
        expected = l2_normalise(trained.model.embed(torch.from_numpy(batch)).numpy())
    got = embedder.embed(batch)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert current_model_info(settings)["version"] == version

    rebuilt = embedder.reconstruct(images[0])
    assert rebuilt.size == (SIZE, SIZE) and rebuilt.mode == "RGB"


def test_broken_files_are_skipped(tmp_path: Path, imagenet_dir: Path) -> None:
    good = sorted(imagenet_dir.glob("*.jpg"))[:3]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:400])
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    data = load_training_set([*good, truncated, tmp_path / "notes.png", tmp_path / "empty.jpg"],
                             SIZE, Settings())
    assert len(data) == 3
    assert sorted(Path(p).name for p, _ in data.skipped) == [
        "empty.jpg", "notes.png", "truncated.jpg"
    ]


class _CrashAfter:
    """A store proxy that fails the n-th update_vectors call, like a kill mid re-embed."""

    def __init__(self, store: VectorStore, calls: int) -> None:
        self._store = store
        self._left = calls

    def update_vectors(self, vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        if self._left == 0:
            raise KeyboardInterrupt("simulated crash")
        self._left -= 1
        self._store.update_vectors(vectors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_interrupted_reembed_resumes_without_retraining(
    settings: Settings, store: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path,
) -> None:
    files = list(iter_image_files(imagenet_dir))
    FolderIngester(store, mobilenet_pipeline).ingest(imagenet_dir, files)
    small_batches = replace(settings, batch_size=8)
    train = TrainConfig(epochs=1)

    with pytest.raises(KeyboardInterrupt):
        train_and_activate(small_batches, _CrashAfter(store, 1), SMALL, train)  # type: ignore[arg-type]
    pending = read_pointer(settings, PENDING)
    assert pending is not None and read_pointer(settings, CURRENT) is None
    done_before = 20 - store.count(PointFilter(not_autoencoder_model=pending))
    assert 0 < done_before < 20

    outcome = train_and_activate(small_batches, store, SMALL, train)
    assert outcome.resumed and outcome.version == pending
    assert outcome.reembed.embedded == 20 - done_before
    assert read_pointer(settings, CURRENT) == pending and read_pointer(settings, PENDING) is None
    assert store.count(PointFilter(not_autoencoder_model=pending)) == 0
    assert store.count(PointFilter(has_vector=VECTOR_AUTOENCODER)) == 20

    embedder = load_autoencoder_embedder(settings)
    assert embedder is not None
    query = next(r for page in store.scroll(with_vectors=[VECTOR_AUTOENCODER]) for r in page)
    hits = store.search(query.vectors[VECTOR_AUTOENCODER], VECTOR_AUTOENCODER, 3,
                        PointFilter(autoencoder_model=pending))
    assert hits[0].id == query.id


def test_opening_the_collection_finishes_an_interrupted_reembed(
    settings: Settings, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
) -> None:
    """After a train killed mid re-embed, the next command completes it: no partial space."""
    from service.collection import open_collection
    from service.search import Searcher

    store = open_store(settings)
    FolderIngester(store, mobilenet_pipeline).ingest(imagenet_dir,
                                                     list(iter_image_files(imagenet_dir)))
    with pytest.raises(KeyboardInterrupt):
        train_and_activate(replace(settings, batch_size=8), _CrashAfter(store, 1), SMALL,
                           TrainConfig(epochs=1))  # type: ignore[arg-type]
    pending = read_pointer(settings, PENDING)
    assert pending is not None
    assert 0 < store.count(PointFilter(not_autoencoder_model=pending)) < 20
    store.close()

    notes: list[str] = []
    reopened = open_collection(settings, notify=notes.append)
    try:
        assert len(notes) == 1 and pending in notes[0]
        assert read_pointer(settings, CURRENT) == pending
        assert read_pointer(settings, PENDING) is None
        assert reopened.count(PointFilter(autoencoder_model=pending)) == 20
        autoencoder = load_autoencoder_embedder(settings)
        assert autoencoder is not None and autoencoder.model_id == pending
        embedders = [*mobilenet_pipeline.embedders.values(), autoencoder]
        searcher = Searcher(reopened, EmbeddingPipeline(settings, embedders))
        query = sorted(imagenet_dir.glob("*.jpg"))[4]
        results = searcher.search(query, space="autoencoder", k=20)
        assert len(results) == 20 and results[0].path == query.name
    finally:
        reopened.close()
    quiet: list[str] = []
    open_collection(settings, notify=quiet.append).close()
    assert quiet == []  # nothing left to finish


def test_long_running_pipeline_follows_a_model_switched_elsewhere(
    settings: Settings, store: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path,
) -> None:
    """The UI and `ingest --watch` keep one pipeline for hours; when `train` (another
    process, on a shared server) makes a new model current, searches and new points use it."""
    from service.pipeline import build_pipeline
    from service.search import Searcher

    FolderIngester(store, mobilenet_pipeline).ingest(imagenet_dir,
                                                     list(iter_image_files(imagenet_dir)))
    first = train_and_activate(settings, store, SMALL, TrainConfig(epochs=1, seed=1))
    pipeline = build_pipeline(settings)
    assert pipeline.model_id(VECTOR_AUTOENCODER) == first.version
    second = train_and_activate(settings, store, SMALL, TrainConfig(epochs=1, seed=2))
    assert second.version != first.version

    query = sorted(imagenet_dir.glob("*.jpg"))[2]
    results = Searcher(store, pipeline).search(query, space="autoencoder", k=20)
    assert pipeline.model_id(VECTOR_AUTOENCODER) == second.version
    assert len(results) == 20 and results[0].path == query.name
    assert {r.payload["autoencoder_model"] for r in results} == {second.version}
