"""Ingest memory is bounded by the ingester's window, not by the folder size (no timing)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.datasets import FASHION_MNIST_ROOT, fashion_mnist_labelled
from ingest.runner import FolderIngester
from service.config import Settings
from service.embedders.base import l2_normalise
from service.pipeline import EmbeddingPipeline, PreparedImage
from service.store import open_store
from service.store.schema import MOBILENET_DIM, VECTOR_MOBILENET
from service.walker import iter_image_files


class _TinyEmbedder:
    """Stands in for MobileNet: 8x8 thumbnails, fixed random projection to 1280-d."""

    space = VECTOR_MOBILENET
    dim = MOBILENET_DIM
    model_id = "tiny-test-embedder"
    min_side = 8

    def __init__(self) -> None:
        self._projection = np.random.default_rng(0).standard_normal((64 * 3, self.dim),
                                                                    dtype=np.float32)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((8, 8)), np.float32).ravel() / 255.0

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return l2_normalise(batch @ self._projection + 1e-3)


class _CountingPipeline(EmbeddingPipeline):
    """Tracks how many prepared images are alive at once, via weakref finalizers."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, [_TinyEmbedder()])
        self._lock = threading.Lock()
        self.alive = 0
        self.max_alive = 0

    def prepare(self, data: bytes, source: str, sha256: str | None = None) -> PreparedImage:
        prepared = super().prepare(data, source, sha256)
        with self._lock:
            self.alive += 1
            self.max_alive = max(self.max_alive, self.alive)
        weakref.finalize(prepared, self._release)
        return prepared

    def _release(self) -> None:
        with self._lock:
            self.alive -= 1


@pytest.mark.skipif(not FASHION_MNIST_ROOT.is_dir(), reason="dataset-fashion-mnist missing")
def test_ingest_holds_a_bounded_window_of_images_and_streams_the_file_list(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "fashion"
    fashion_mnist_labelled(folder, 600, workers=1)
    settings = Settings(data_dir=tmp_path / "data", batch_size=8, decode_workers=2)
    pipeline = _CountingPipeline(settings)
    store = open_store(settings)
    pulled = 0
    lead: list[int] = []  # files taken from the iterator but not yet reported done

    def files() -> Iterator[Path]:
        nonlocal pulled
        for path in iter_image_files(folder):
            pulled += 1
            yield path

    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        lead.append(pulled - done)

    try:
        ingester = FolderIngester(store, pipeline)
        report = ingester.ingest(folder, files(), progress)
        assert report.added == 600 and not report.failed
        assert store.count() == 600
    finally:
        store.close()
    assert ingester.max_prepared < 100  # the bound really is far below the folder size
    assert 0 < pipeline.max_alive <= ingester.max_prepared
    assert max(lead) <= ingester.window
    assert pipeline.alive == 0  # nothing retained after the run
