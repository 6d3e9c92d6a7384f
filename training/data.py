"""The training set: image files from the collection or a folder, decoded once into memory.

Images are decoded with :func:`service.images.decode_image` and squashed to the model size
with :func:`service.autoencoder.preprocess.resize_square`, exactly as the embedder does at
ingest time. 5,000 images at 64x64 take 61 MB as uint8, so the whole set stays in memory and
epochs cost no decoding. Unreadable or broken files are skipped and reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.autoencoder.preprocess import resize_square
from service.config import Settings
from service.errors import ImageDecodeError
from service.images import sha256_hex
from service.locations import stored_file
from service.pipeline import decode_file
from service.store.base import VectorStore
from service.walker import iter_image_files


@dataclass
class TrainingSet:
    """Decoded images ordered by content hash, so the same files always train the same way."""

    pixels: np.ndarray  # (n, size, size, 3) uint8
    digests: list[str]  # sha256 of each image file, same order as pixels
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    duplicates: int = 0

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the sorted content hashes: identifies the training images."""
        return hashlib.sha256("\n".join(self.digests).encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.digests)


def files_in_folder(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden entries skipped), sorted."""
    return sorted(iter_image_files(folder))


def files_in_collection(store: VectorStore, page_size: int = 512) -> list[Path]:
    """The file of every point in the collection (payload ``root`` + ``path``)."""
    files: set[Path] = set()
    for page in store.scroll(batch_size=page_size):
        for record in page:
            try:
                files.add(stored_file(record.payload))
            except ImageDecodeError:
                continue  # no usable path: nothing to train on
    return sorted(files)


def _load_one(
    path: Path, size: int, settings: Settings
) -> tuple[Path, np.ndarray | None, str]:
    """(path, pixels or None, sha256 or the reason it was skipped)."""
    try:
        data, decoded = decode_file(path, settings, min_side=size)
        return path, resize_square(decoded.image, size), sha256_hex(data)
    except ImageDecodeError as exc:
        return path, None, str(exc)


def load_training_set(
    files: Sequence[Path],
    size: int,
    settings: Settings,
    advance: Callable[[int], None] | None = None,
) -> TrainingSet:
    """Decode ``files`` in ``settings.decode_workers`` threads; skip broken files and dupes."""
    by_digest: dict[str, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    duplicates = 0
    with ThreadPoolExecutor(max(1, settings.decode_workers)) as pool:
        results: Iterable[tuple[Path, np.ndarray | None, str]] = pool.map(
            lambda p: _load_one(p, size, settings), files
        )
        for path, pixels, note in results:
            if pixels is None:
                skipped.append((str(path), note))
            elif note in by_digest:
                duplicates += 1
            else:
                by_digest[note] = pixels
            if advance is not None:
                advance(1)
    digests = sorted(by_digest)
    pixels = (
        np.stack([by_digest[d] for d in digests])
        if digests
        else np.zeros((0, size, size, 3), np.uint8)
    )
    return TrainingSet(pixels, digests, skipped, duplicates)
