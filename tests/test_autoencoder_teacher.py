"""The optional teacher term of autoencoder training: its targets are stored mobilenet vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.runner import FolderIngester
from service.config import Settings
from service.pipeline import EmbeddingPipeline
from service.store.base import VectorStore
from service.store.schema import VECTOR_MOBILENET, point_id_for
from service.walker import iter_image_files
from training.data import files_in_folder, load_training_set
from training.driver import teacher_vectors


def test_teacher_vectors_are_the_training_images_stored_mobilenet_vectors(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
    photo_dir: Path,
) -> None:
    FolderIngester(store, mobilenet_pipeline).ingest(
        imagenet_dir, list(iter_image_files(imagenet_dir))
    )
    data = load_training_set(files_in_folder(imagenet_dir), 32, Settings())
    targets = teacher_vectors(store, data.digests)
    assert targets is not None and targets.shape == (20, 1280)
    stored = store.retrieve([point_id_for(data.digests[5])], with_vectors=[VECTOR_MOBILENET])
    np.testing.assert_allclose(targets[5], stored[0].vectors[VECTOR_MOBILENET])
    # A folder that was never ingested has no teacher: training falls back to pixels only.
    outside = load_training_set(files_in_folder(photo_dir), 32, Settings())
    assert teacher_vectors(store, outside.digests) is None
