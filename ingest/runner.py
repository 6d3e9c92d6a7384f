"""Ingest one folder: parallel decode workers feed batched inference and batched upserts.

Point ids derive from file content, so a run killed at any moment and started again stores
every image exactly once: points already in the store are skipped before decoding.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.report import IngestReport
from ingest.walker import relative_posix
from service.errors import ImageDecodeError
from service.images import sha256_hex
from service.pipeline import EmbeddingPipeline, PreparedImage, read_image_bytes
from service.store.base import PointRecord, VectorStore
from service.store.schema import (
    PAYLOAD_AE_MODEL,
    PAYLOAD_FILE_SIZE,
    PAYLOAD_FORMAT,
    PAYLOAD_HEIGHT,
    PAYLOAD_INGESTED_AT,
    PAYLOAD_PATH,
    PAYLOAD_ROOT,
    PAYLOAD_SHA256,
    PAYLOAD_WIDTH,
    VECTOR_AUTOENCODER,
    point_id_for,
)

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class _Stored:
    """The file's content is already in the store."""


@dataclass(frozen=True)
class _Failed:
    path: str
    reason: str


class FolderIngester:
    """Embeds and stores the image files of one root folder."""

    def __init__(self, store: VectorStore, pipeline: EmbeddingPipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        settings = pipeline.settings
        self.batch_size = settings.batch_size
        self.workers = settings.decode_workers

    def ingest(
        self,
        root: Path,
        files: Iterable[Path],
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest ``files`` (all below ``root``); ``on_progress(n)`` after each n files."""
        root = root.resolve()
        report = IngestReport(root=str(root))
        started = time.perf_counter()
        seen_this_run: set[str] = set()
        batch: list[PreparedImage] = []
        window = max(2 * self.batch_size, 4 * self.workers)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="simimg-decode") as pool:
            pending: deque[Future[PreparedImage | _Stored | _Failed]] = deque()
            file_iter = iter(files)
            for path in file_iter:
                pending.append(pool.submit(self._load, root, path))
                if len(pending) >= window:
                    break
            while pending:
                result = pending.popleft().result()
                next_path = next(file_iter, None)
                if next_path is not None:
                    pending.append(pool.submit(self._load, root, next_path))
                report.found += 1
                if isinstance(result, _Failed):
                    report.failed.append((result.path, result.reason))
                elif isinstance(result, _Stored):
                    report.already_stored += 1
                elif result.point_id in seen_this_run:
                    report.duplicates += 1
                else:
                    seen_this_run.add(result.point_id)
                    batch.append(result)
                    if len(batch) >= self.batch_size:
                        report.added += self._store_batch(root, batch)
                        batch = []
                if on_progress:
                    on_progress(1)
        if batch:
            report.added += self._store_batch(root, batch)
        self.store.flush()
        report.seconds = time.perf_counter() - started
        return report

    def _load(self, root: Path, path: Path) -> PreparedImage | _Stored | _Failed:
        """Runs in a decode worker: read, hash, skip if stored, else decode + preprocess."""
        source = relative_posix(path, root)
        try:
            data = read_image_bytes(path, self.pipeline.settings.max_file_bytes)
            digest = sha256_hex(data)
            if self.store.existing_ids([point_id_for(digest)]):
                return _Stored()
            return self.pipeline.prepare(data, source, sha256=digest)
        except ImageDecodeError as exc:
            return _Failed(source, _reason(exc, source, path))

    def _store_batch(self, root: Path, batch: list[PreparedImage]) -> int:
        vectors = self.pipeline.embed(batch)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        autoencoder_model = self.pipeline.model_id(VECTOR_AUTOENCODER)
        points = []
        for row, item in enumerate(batch):
            payload: dict[str, Any] = {
                PAYLOAD_PATH: item.source,
                PAYLOAD_ROOT: str(root),
                PAYLOAD_SHA256: item.sha256,
                PAYLOAD_WIDTH: item.width,
                PAYLOAD_HEIGHT: item.height,
                PAYLOAD_FORMAT: item.format,
                PAYLOAD_FILE_SIZE: item.file_size,
                PAYLOAD_INGESTED_AT: now,
            }
            if autoencoder_model is not None:
                payload[PAYLOAD_AE_MODEL] = autoencoder_model
            points.append(
                PointRecord(
                    id=item.point_id,
                    vectors={space: matrix[row] for space, matrix in vectors.items()},
                    payload=payload,
                )
            )
        self.store.upsert(points)
        return len(points)


def _reason(exc: ImageDecodeError, *prefixes: object) -> str:
    message = str(exc)
    for prefix in prefixes:
        if message.startswith(f"{prefix}: "):
            return message[len(f"{prefix}: "):]
    return message
