"""The default mobilenet search is whitened with statistics learned on the collection.

Real images: 20 ImageNet photos (foolbox) among Fashion-MNIST product photos, ingested
through the real path into the real embedded store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.datasets import fashion_mnist_labelled
from benchmarks.duplicates import EDITS
from ingest.runner import FolderIngester
from service.embedders.base import l2_normalise
from service.pipeline import EmbeddingPipeline
from service.query_whitening import load_whitening, whitening_path
from service.search import Searcher
from service.store import open_store
from service.store.base import VectorStore
from service.store.schema import VECTOR_MOBILENET
from service.walker import iter_image_files
from service.whitening import fit_whitening
from tests.conftest import make_settings


def ingest(store: VectorStore, pipeline: EmbeddingPipeline, folder: Path) -> None:
    report = FolderIngester(store, pipeline).ingest(folder, list(iter_image_files(folder)))
    assert not report.failed


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("products")
    fashion_mnist_labelled(dest, count=40)
    return dest


@pytest.fixture(scope="module")
def more_products(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("more-products")
    fashion_mnist_labelled(dest, count=20, split="test")
    return dest


def test_whitening_is_learned_stored_reused_after_restart_and_relearned(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, products: Path, more_products: Path,
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir, whiten_min_points=50)
    query = sorted(imagenet_dir.glob("*.jpg"))[3]
    store = open_store(settings)
    try:
        ingest(store, mobilenet_pipeline, imagenet_dir)
        Searcher(store, mobilenet_pipeline).search(query, k=3)
        assert not whitening_path(settings).exists()  # 20 images: too few to learn from
        ingest(store, mobilenet_pipeline, products)
        assert store.count() == 60 >= settings.whiten_min_points
        first = Searcher(store, mobilenet_pipeline).search(query, k=5)
        learned = load_whitening(whitening_path(settings))
        assert learned is not None and learned.points == 60
        stored = np.stack([r.vectors[VECTOR_MOBILENET] for page in store.scroll(
            with_vectors=[VECTOR_MOBILENET]) for r in page])
    finally:
        store.close()
    # What was learned is the collection's whitening (vectors read back are float16).
    expected = fit_whitening(stored, shrinkage=settings.whiten_shrinkage)
    np.testing.assert_allclose(learned.whitening.mean, expected.mean, atol=1e-6)
    np.testing.assert_allclose(learned.whitening.matrix, expected.matrix, rtol=1e-4, atol=1e-3)
    # The shown score is the whitened cosine: the query is in the collection, so 1.0.
    assert first[0].path == query.name and first[0].score == pytest.approx(1.0, abs=1e-3)

    reopened = open_store(settings)  # a restart: the saved whitening is used as it is
    try:
        again = Searcher(reopened, mobilenet_pipeline).search(query, k=5)
        assert [(r.id, round(r.score, 5)) for r in again] == [
            (r.id, round(r.score, 5)) for r in first
        ]
        assert load_whitening(whitening_path(settings)).version == learned.version
        ingest(reopened, mobilenet_pipeline, more_products)  # +33%: the collection moved
        Searcher(reopened, mobilenet_pipeline).search(query, k=5)
        relearned = load_whitening(whitening_path(settings))
        assert relearned.version != learned.version and relearned.points == 80
    finally:
        reopened.close()


def test_edited_copies_from_outside_find_their_original_first(
    session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
    products: Path, tmp_path: Path,
) -> None:
    store = open_store(make_settings(tmp_path / "data", session_models_dir,
                                     whiten_min_points=50))
    ingest(store, mobilenet_pipeline, imagenet_dir)
    ingest(store, mobilenet_pipeline, products)
    searcher = Searcher(store, mobilenet_pipeline)
    misses = []
    originals = sorted(imagenet_dir.glob("*.jpg"))
    for original in originals:
        with Image.open(original) as im:
            photo = im.convert("RGB")
        for edit in ("crop", "brightness", "greyscale"):
            transform, quality = EDITS[edit]
            copy = tmp_path / f"{original.stem}-{edit}.jpg"
            transform(photo).save(copy, quality=quality)
            results = searcher.search(copy, k=3)
            if results[0].path != original.name:
                misses.append((copy.name, [r.path for r in results]))
    store.close()
    assert load_whitening(whitening_path(searcher.whitening.settings)) is not None
    assert not misses, misses


def test_whitening_changes_the_ranking_and_zero_turns_it_off(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, products: Path,
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir, whiten_min_points=50)
    query = sorted(products.rglob("*.png"))[0]
    store = open_store(settings)
    try:
        ingest(store, mobilenet_pipeline, imagenet_dir)
        ingest(store, mobilenet_pipeline, products)
        whitened = Searcher(store, mobilenet_pipeline).search(query, k=20)
        vector = mobilenet_pipeline.embed([mobilenet_pipeline.prepare_file(query)])
        records = {r.id: r.vectors[VECTOR_MOBILENET] for page in store.scroll(
            with_vectors=[VECTOR_MOBILENET]) for r in page}
    finally:
        store.close()
    store = open_store(make_settings(tmp_path / "data", session_models_dir, whiten_shrinkage=0))
    try:
        plain = Searcher(store, mobilenet_pipeline).search(query, k=20)
    finally:
        store.close()
    query_vector = vector[VECTOR_MOBILENET]
    # Off: the plain cosine. On: a different order, by the whitened cosine.
    plain_scores = [float(l2_normalise(records[r.id][None])[0] @ query_vector[0]) for r in plain]
    np.testing.assert_allclose([r.score for r in plain], plain_scores, atol=2e-3)
    assert [r.id for r in plain] != [r.id for r in whitened]
    whitening = fit_whitening(np.stack(list(records.values())), settings.whiten_shrinkage)
    expected = whitening.apply(np.stack([records[r.id] for r in whitened])) @ whitening.apply(
        query_vector)[0]
    np.testing.assert_allclose([r.score for r in whitened], expected, atol=2e-3)
