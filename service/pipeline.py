"""The one data path from file bytes to vectors, shared by ingest, queries and training.

``prepare`` (decode + preprocess, thread-safe, releases the GIL in PIL) is what decode
workers run in parallel; it also reads the photo's EXIF metadata from the header the decoder
parsed (no second decode). ``embed_batch`` runs the models on a stacked batch; the MobileNet
pass gives the image's ImageNet ``labels`` alongside its vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.config import Settings
from service.embedders.autoencoder import NOT_TRAINED_MESSAGE
from service.embedders.base import Embedder
from service.embedders.imagenet_labels import labels_for
from service.errors import ImageDecodeError, ImageTooLargeError, ModelNotTrainedError
from service.exif import exif_metadata
from service.images import DecodedImage, decode_image, sha256_hex
from service.store.schema import VECTOR_AUTOENCODER, VECTOR_MOBILENET, point_id_for


@dataclass
class PreparedImage:
    """A decoded, preprocessed image with the facts stored in its payload."""

    source: str
    sha256: str
    point_id: str
    file_size: int
    width: int
    height: int
    format: str
    inputs: dict[str, np.ndarray] = field(repr=False)
    # The model each input was preprocessed for (a model switch may happen in between).
    models: dict[str, str] = field(default_factory=dict)
    # Payload keys read from the file's EXIF (taken_at, camera, location_gps), when valid.
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddedBatch:
    """Vectors per space and, when the MobileNet space ran, each image's ``labels``."""

    vectors: dict[str, np.ndarray]
    labels: list[list[str]] | None = None


def read_image_bytes(path: Path, max_file_bytes: int) -> bytes:
    """Read a file for decoding, refusing non-files and oversized files with a clear reason."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageDecodeError(f"{path}: not a regular file")
        if size > max_file_bytes:
            raise ImageTooLargeError(
                f"{path}: file is {size:,} bytes, over the limit of {max_file_bytes:,} "
                "(SIMIMG_MAX_FILE_BYTES)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def decode_file(
    path: Path, settings: Settings, min_side: int | None = None, source: str | None = None
) -> tuple[bytes, DecodedImage]:
    """Read and decode one stored or uploaded file under the settings' size and pixel limits."""
    data = read_image_bytes(path, settings.max_file_bytes)
    decoded = decode_image(data, max_pixels=settings.max_pixels, min_side=min_side,
                           source=source or str(path))
    return data, decoded


class EmbeddingPipeline:
    """Decode once, preprocess for every embedder, embed batches per space."""

    def __init__(
        self, settings: Settings, embedders: Sequence[Embedder], follow_autoencoder: bool = False
    ) -> None:
        self.settings = settings
        self.embedders = {e.space: e for e in embedders}
        self._min_side = max(e.min_side for e in embedders)
        # Long-running users (the UI, ingest --watch) follow the CURRENT autoencoder, which
        # another process may switch (`train` against a shared Qdrant server).
        self._follow_autoencoder = follow_autoencoder
        self._autoencoder_pointer: str | None = self.model_id(VECTOR_AUTOENCODER)

    def refresh(self) -> None:
        """Swap in the autoencoder that is CURRENT now, if it changed since the last look.

        Costs one small file read; a no-op unless the pipeline follows the autoencoder.
        """
        if not self._follow_autoencoder:
            return
        from service.autoencoder.files import CURRENT, read_pointer
        from service.embedders.autoencoder import load_autoencoder_version

        current = read_pointer(self.settings, CURRENT)
        if current == self._autoencoder_pointer:
            return
        if current is None:
            self.embedders.pop(VECTOR_AUTOENCODER, None)
        else:
            embedder = load_autoencoder_version(self.settings, current)
            self.embedders[VECTOR_AUTOENCODER] = embedder
            self._min_side = max(self._min_side, embedder.min_side)
        self._autoencoder_pointer = current

    @property
    def spaces(self) -> list[str]:
        return list(self.embedders)

    def model_id(self, space: str) -> str | None:
        embedder = self.embedders.get(space)
        return embedder.model_id if embedder else None

    def embedder(self, space: str) -> Embedder:
        try:
            return self.embedders[space]
        except KeyError:
            if space == VECTOR_AUTOENCODER:
                raise ModelNotTrainedError(NOT_TRAINED_MESSAGE) from None
            raise

    def prepare(
        self, data: bytes, source: str, sha256: str | None = None,
        spaces: Sequence[str] | None = None,
    ) -> PreparedImage:
        """Decode and preprocess; raises ImageDecodeError naming ``source``.

        ``sha256``: the content hash when the caller already computed it. ``spaces``: the
        only spaces to preprocess for (a query searching one space; default: every space).
        """
        # one consistent view, even if refresh() swaps an embedder meanwhile
        embedders = {space: e for space, e in self.embedders.items()
                     if spaces is None or space in spaces}
        decoded = decode_image(
            data, max_pixels=self.settings.max_pixels, min_side=self._min_side, source=source
        )
        digest = sha256 or sha256_hex(data)
        return PreparedImage(
            source=source,
            sha256=digest,
            point_id=point_id_for(digest),
            file_size=len(data),
            width=decoded.width,
            height=decoded.height,
            format=decoded.format,
            inputs={space: e.preprocess(decoded.image) for space, e in embedders.items()},
            models={space: e.model_id for space, e in embedders.items()},
            metadata=exif_metadata(decoded.exif),
        )

    def prepare_file(
        self, path: Path, source: str | None = None, spaces: Sequence[str] | None = None
    ) -> PreparedImage:
        data = read_image_bytes(path, self.settings.max_file_bytes)
        return self.prepare(data, source or str(path), spaces=spaces)

    def current_spaces(self, items: Sequence[PreparedImage]) -> list[str]:
        """The spaces every item was preprocessed for with the model loaded now."""
        return [space for space, embedder in self.embedders.items()
                if all(item.models.get(space) == embedder.model_id for item in items)]

    def embed(
        self, items: Sequence[PreparedImage], spaces: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Vectors for ``items`` in each requested space (default: every loaded space)."""
        return self.embed_batch(items, spaces).vectors

    def embed_batch(
        self, items: Sequence[PreparedImage], spaces: Sequence[str] | None = None
    ) -> EmbeddedBatch:
        """:meth:`embed`, plus the labels of the MobileNet pass (same forward pass)."""
        wanted = list(spaces) if spaces is not None else self.spaces
        out = EmbeddedBatch({})
        for space in wanted:
            embedder = self.embedder(space)
            if not items:
                out.vectors[space] = np.zeros((0, embedder.dim), np.float32)
                continue
            batch = np.stack([item.inputs[space] for item in items])
            classify = getattr(embedder, "embed_and_classify", None)
            if classify is None:
                out.vectors[space] = embedder.embed(batch)
                continue
            out.vectors[space], logits = classify(batch)
            out.labels = labels_for(logits)
        return out


def build_pipeline(settings: Settings, spaces: Sequence[str] | None = None) -> EmbeddingPipeline:
    """Load the embedders. By default MobileNet plus the autoencoder when one is trained.

    ``spaces`` limits loading (e.g. only ``autoencoder`` for re-embedding); asking for the
    autoencoder before a model exists raises :class:`ModelNotTrainedError`.
    """
    from service.embedders.autoencoder import (
        load_autoencoder_embedder,
        require_autoencoder_embedder,
    )
    from service.embedders.mobilenet import load_mobilenet

    wanted = set(spaces) if spaces is not None else {VECTOR_MOBILENET, VECTOR_AUTOENCODER}
    embedders: list[Embedder] = []
    if VECTOR_MOBILENET in wanted:
        embedders.append(load_mobilenet(settings))
    if VECTOR_AUTOENCODER in wanted:
        # Asked for by name: it must exist. By default: only when one is trained.
        load = require_autoencoder_embedder if spaces is not None else load_autoencoder_embedder
        if (autoencoder := load(settings)) is not None:
            embedders.append(autoencoder)
    return EmbeddingPipeline(settings, embedders, follow_autoencoder=VECTOR_AUTOENCODER in wanted)
