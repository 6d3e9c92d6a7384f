"""``train`` end to end: load images, train (or resume a pending model), re-embed, switch.

Crash safety: the new checkpoint is named by the PENDING pointer as soon as it is written
and becomes CURRENT only after every point carries its vector. A run killed at any moment
leaves the old model current and searchable; the next ``train`` with the same images and
options skips training and finishes the re-embed.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.autoencoder.config import AutoencoderConfig
from service.autoencoder.files import (
    CURRENT,
    PENDING,
    checkpoint_dir,
    read_checkpoint_meta,
    read_pointer,
    write_pointer,
)
from service.config import Settings
from service.errors import ConfigError
from service.reembed import ReembedReport, activate_model, pending_count
from service.store.base import VectorStore
from service.store.schema import VECTOR_MOBILENET, point_id_for
from training.checkpoint import prune_checkpoints, resumable_version, write_checkpoint
from training.data import TrainingSet, files_in_collection, files_in_folder, load_training_set
from training.loop import TrainConfig, train_autoencoder
from training.progress import TrainingObserver


@dataclass
class TrainOutcome:
    version: str
    resumed: bool  # True when a pending checkpoint was reused instead of training
    meta: dict[str, Any]
    images: int
    skipped: list[tuple[str, str]]
    reembed: ReembedReport
    checkpoint: Path
    removed_versions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What ``train`` reports, as JSON (the service's train job result)."""
        return {
            "version": self.version,
            "resumed": self.resumed,
            "images": self.images,
            "skipped": [list(item) for item in self.skipped],
            "metrics": self.meta["metrics"],
            "reembed": {
                "embedded": self.reembed.embedded,
                "seconds": round(self.reembed.seconds, 3),
                "failed": [list(item) for item in self.reembed.failed],
            },
            "checkpoint": str(self.checkpoint),
            "removed_versions": self.removed_versions,
        }


def collect_training_set(
    settings: Settings,
    store: VectorStore,
    image_size: int,
    folder: Path | None,
    observer: TrainingObserver,
) -> TrainingSet:
    """Decode the training images: ``folder`` if given, else every point's file."""
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(f"training folder not found: {folder}")
        files = files_in_folder(folder)
    else:
        files = files_in_collection(store)
        if not files:
            raise ConfigError(
                "the collection is empty: run `simimg-admin ingest FOLDER` first, "
                "or train on a folder with --folder"
            )
    observer.stage("loading images", len(files))
    return load_training_set(files, image_size, settings, observer.advance)


def teacher_vectors(store: VectorStore, digests: list[str]) -> np.ndarray | None:
    """Each training image's stored ``mobilenet`` vector, or None if any image has none
    (for example training on a folder that was never ingested)."""
    ids = [point_id_for(digest) for digest in digests]
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), 512):
        for record in store.retrieve(ids[start : start + 512], with_vectors=[VECTOR_MOBILENET]):
            if VECTOR_MOBILENET in record.vectors:
                found[record.id] = record.vectors[VECTOR_MOBILENET]
    if len(found) < len(ids):
        return None
    return np.stack([found[point_id] for point_id in ids])


def train_and_activate(
    settings: Settings,
    store: VectorStore,
    model_config: AutoencoderConfig,
    train_config: TrainConfig,
    folder: Path | None = None,
    observer: TrainingObserver | None = None,
) -> TrainOutcome:
    """Train (or resume), re-embed every point, then make the model current."""
    observer = observer or TrainingObserver()
    if model_config.latent_dim != settings.latent_dim:
        raise ConfigError(
            f"latent dim {model_config.latent_dim} differs from the collection's "
            f"{settings.latent_dim}"
        )
    data = collect_training_set(settings, store, model_config.image_size, folder, observer)
    for path, reason in data.skipped:
        observer.message(f"skipped {path}: {reason}")
    request = {"model": model_config.to_dict(), "training": train_config.to_dict()}
    version = resumable_version(settings, data.fingerprint, request)
    resumed = version is not None
    if version is None:
        targets = teacher_vectors(store, data.digests) if train_config.distill > 0 else None
        if train_config.distill > 0 and targets is None:
            observer.message("some images are not in the collection: training without teacher")
        result = train_autoencoder(data.pixels, model_config, train_config, observer, targets)
        meta = {
            "config": model_config.to_dict(),
            "request": request,
            "metrics": result.metrics(),
            "n_images": len(data),
            "skipped": len(data.skipped),
            "duplicates": data.duplicates,
            "fingerprint": data.fingerprint,
            "source": str(folder.resolve()) if folder is not None else "collection",
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        version = write_checkpoint(settings, result.model, meta, result.history)
        write_pointer(settings, PENDING, version)
    else:
        observer.message(f"resuming pending model {version} (same images and options)")
    previous = read_pointer(settings, CURRENT)
    observer.stage("re-embedding", pending_count(store, version))
    report = activate_model(store, settings, version, observer.advance)
    removed = prune_checkpoints(settings, keep={version} | ({previous} if previous else set()))
    return TrainOutcome(
        version=version,
        resumed=resumed,
        meta=read_checkpoint_meta(settings, version),
        images=len(data),
        skipped=data.skipped,
        reembed=report,
        checkpoint=checkpoint_dir(settings, version),
        removed_versions=removed,
    )
