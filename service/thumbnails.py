"""Thumbnails of stored images, cached on disk by point id and size.

A point id is derived from the file's content, so the thumbnail of ``(id, size)`` never
changes: each cache file is written once (to a temporary name, fsynced, then hard-linked
into place, which fails rather than replace a file that is already there) and never
rewritten. A response that names or streams a cache file can therefore never read a
half-written or replaced image, however many requests ask for it at once; and the id and
size make a strong ``ETag`` that lets browsers cache the file for good.

Only stored images are ever read: the file comes from the point's payload
(:func:`~service.locations.stored_file`: the first location whose file exists), and its
content must still hash to the stored ``sha256`` (a file changed on disk since ingest is
"unavailable", not shown as the old one).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from service.config import Settings
from service.errors import ConfigError, ImageDecodeError, PointNotFoundError
from service.images import decode_image, sha256_hex
from service.locations import stored_file
from service.pipeline import read_image_bytes
from service.store.base import VectorStore
from service.store.schema import PAYLOAD_SHA256

THUMBNAIL_SIZES = (128, 320, 640)
DEFAULT_THUMBNAIL_SIZE = 320
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Thumbnail:
    """A finished cache file; ``etag`` is quoted, ready for the header."""

    path: Path
    etag: str
    media_type: str = "image/jpeg"


class ThumbnailCache:
    """``data_dir/cache/thumbnails/SIZE/ab/ID.jpg``, created on first request."""

    def __init__(self, store: VectorStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.root = settings.cache_dir / "thumbnails"
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def get(self, point_id: str, size: int = DEFAULT_THUMBNAIL_SIZE) -> Thumbnail:
        """The thumbnail of stored point ``point_id`` (looked up in the store)."""
        _check_size(size)
        cached = self._cached(point_id, size)
        if cached is not None:
            return cached
        records = self.store.retrieve([point_id])
        if not records:
            raise PointNotFoundError(f"no image with id {point_id} in the collection")
        return self.from_payload(point_id, records[0].payload, size)

    def from_payload(
        self, point_id: str, payload: dict[str, Any], size: int = DEFAULT_THUMBNAIL_SIZE
    ) -> Thumbnail:
        """The thumbnail of a point whose payload the caller already has (a search hit)."""
        _check_size(size)
        cached = self._cached(point_id, size)
        if cached is not None:
            return cached
        # One decode per (id, size) even when many requests ask at once.
        with self._lock_for(point_id, size):
            cached = self._cached(point_id, size)
            if cached is not None:
                return cached
            image = self._render(payload, size)
            path = self.path_of(point_id, size)
            write_once(path, image)
        return Thumbnail(path, _etag(point_id, size))

    def path_of(self, point_id: str, size: int) -> Path:
        if not point_id or not all(c.isalnum() or c == "-" for c in point_id):
            raise PointNotFoundError(f"no image with id {point_id} in the collection")
        return self.root / str(size) / point_id[:2] / f"{point_id}.jpg"

    def _cached(self, point_id: str, size: int) -> Thumbnail | None:
        path = self.path_of(point_id, size)
        return Thumbnail(path, _etag(point_id, size)) if path.is_file() else None

    def _render(self, payload: dict[str, Any], size: int) -> Image.Image:
        file = stored_file(payload)
        data = read_image_bytes(file, self.settings.max_file_bytes)
        expected = payload.get(PAYLOAD_SHA256)
        if expected and sha256_hex(data) != expected:
            raise ImageDecodeError(f"{file}: changed on disk since it was ingested")
        decoded = decode_image(data, max_pixels=self.settings.max_pixels, min_side=size,
                               source=file.name)
        image = decoded.image.copy()
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        return image.convert("RGB")

    def _lock_for(self, point_id: str, size: int) -> threading.Lock:
        with self._locks_guard:
            if len(self._locks) > 4096:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault((point_id, size), threading.Lock())


def _check_size(size: int) -> None:
    if size not in THUMBNAIL_SIZES:
        sizes = ", ".join(map(str, THUMBNAIL_SIZES))
        raise ConfigError(f"thumbnail size must be one of {sizes}, got {size}")


def _etag(point_id: str, size: int) -> str:
    return f'"{point_id}-{size}"'


def write_once(path: Path, image: Image.Image) -> None:
    """Write ``image`` to ``path`` unless it exists; never replace or truncate a file there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="JPEG", quality=JPEG_QUALITY)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        # atomic, and refuses to replace an existing file (another writer came first)
        with contextlib.suppress(FileExistsError):
            os.link(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
