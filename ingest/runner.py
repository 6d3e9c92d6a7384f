"""Ingest one folder: parallel decode workers feed batched inference and batched upserts.

Three stages overlap on the machine's cores:

* decode workers (``settings.decode_workers`` threads) read, hash, decode and preprocess
  files; PIL and hashlib release the GIL, so they run beside inference;
* the calling thread stacks prepared images into batches of ``settings.batch_size`` and runs
  the models on them (ONNX Runtime releases the GIL and uses every core);
* one writer thread upserts each embedded batch, so the store's work overlaps the next
  batch's inference.

Memory is bounded whatever the folder size: ``files`` is consumed lazily, at most
:attr:`FolderIngester.window` files are being decoded or waiting, at most one batch is
being embedded and at most :data:`_WRITES_IN_FLIGHT` batches of vectors wait for the store.

Point ids derive from file content, so a run killed at any moment and started again stores
every image exactly once: points already in the store are skipped before decoding. Every
hashed file is reported to a :class:`~ingest.ledger.LocationLedger`, which records the
places of contents already stored (see :mod:`ingest.sync` for the whole reconciliation).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ingest.ledger import LocationIndex, LocationLedger
from ingest.report import IngestReport
from service.errors import ImageDecodeError
from service.exif import metadata_from_bytes, modified_at
from service.images import sha256_hex
from service.locations import Location, locations_payload
from service.pipeline import EmbeddingPipeline, PreparedImage, read_image_bytes
from service.store.base import PointRecord, VectorStore
from service.store.schema import (
    PAYLOAD_AE_MODEL,
    PAYLOAD_FILE_SIZE,
    PAYLOAD_FORMAT,
    PAYLOAD_HEIGHT,
    PAYLOAD_INGESTED_AT,
    PAYLOAD_LABELS,
    PAYLOAD_MODIFIED_AT,
    PAYLOAD_SHA256,
    PAYLOAD_WIDTH,
    VECTOR_AUTOENCODER,
    point_id_for,
)
from service.walker import relative_posix

ProgressCallback = Callable[[int], None]
T = TypeVar("T")
R = TypeVar("R")

# Embedded batches allowed to wait for the writer thread before inference pauses.
_WRITES_IN_FLIGHT = 2


@dataclass(frozen=True)
class _Stored:
    """The file's content is already in the store (as point ``point_id``).

    ``metadata``: payload keys to add when the point was stored before simimg read photo
    metadata (schema < 4); read from the file's header, nothing is embedded again.
    """

    point_id: str
    location: Location
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Prepared:
    """A new content, decoded and preprocessed, found at ``location``."""

    image: PreparedImage
    location: Location


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
        # Files submitted to the decode pool but not yet taken by the batcher: enough to
        # keep every worker busy while a batch is embedded, small enough to bound memory.
        self.window = max(2 * self.batch_size, 4 * self.workers)

    @property
    def max_prepared(self) -> int:
        """Upper bound on prepared (decoded, preprocessed) images alive during ingest."""
        return self.window + self.batch_size

    def ingest(
        self,
        root: Path,
        files: Iterable[Path],
        on_progress: ProgressCallback | None = None,
        ledger: LocationLedger | None = None,
    ) -> IngestReport:
        """Ingest ``files`` (all below ``root``); ``on_progress(n)`` after each n files.

        Each file's place is reported to ``ledger``; without one, a ledger over no known
        places is applied at the end, so copies of stored contents are recorded too.
        """
        root = root.resolve()
        own_ledger = ledger is None
        ledger = ledger if ledger is not None else LocationLedger(LocationIndex())
        report = IngestReport(root=str(root))
        started = time.perf_counter()
        seen_this_run: set[str] = set()
        batch: list[_Prepared] = []
        with (
            _BoundedWriter(self.store.upsert, _WRITES_IN_FLIGHT) as writer,
            ThreadPoolExecutor(self.workers, thread_name_prefix="simimg-decode") as pool,
        ):
            results = _ordered_map(pool, lambda path: self._load(root, path), files, self.window)
            for result in results:
                report.found += 1
                if isinstance(result, _Failed):
                    report.failed.append((result.path, result.reason))
                elif isinstance(result, _Stored):
                    report.already_stored += 1
                    ledger.found(result.location, result.point_id, new_point=False)
                    if result.metadata:
                        self.store.set_payload(result.metadata, [result.point_id])
                elif result.image.point_id in seen_this_run:
                    report.duplicates += 1
                    ledger.found(result.location, result.image.point_id, new_point=False)
                else:
                    seen_this_run.add(result.image.point_id)
                    ledger.found(result.location, result.image.point_id, new_point=True)
                    batch.append(result)
                    if len(batch) >= self.batch_size:
                        report.added += writer.submit(self._points(batch))
                        batch = []
                if on_progress:
                    on_progress(1)
            if batch:
                report.added += writer.submit(self._points(batch))
        if own_ledger:
            ledger.apply(self.store)
        self.store.flush()
        report.seconds = time.perf_counter() - started
        return report

    def _load(self, root: Path, path: Path) -> _Prepared | _Stored | _Failed:
        """Runs in a decode worker: read, hash, skip if stored, else decode + preprocess."""
        source = relative_posix(path, root)
        try:
            # stat before reading: a file changed after this is re-read by the next sync
            mtime_ns = _mtime_ns(path)
            location = Location(str(root), source, mtime_ns)
            data = read_image_bytes(path, self.pipeline.settings.max_file_bytes)
            digest = sha256_hex(data)
            point_id = point_id_for(digest)
            stored = self.store.retrieve([point_id])
            if stored:
                return _Stored(point_id, location, _missing_metadata(stored[0].payload, data,
                                                                      mtime_ns))
            return _Prepared(self.pipeline.prepare(data, source, sha256=digest), location)
        except ImageDecodeError as exc:
            return _Failed(source, _reason(exc, source, path))
        except MemoryError:
            return _Failed(source, "out of memory while decoding")

    def _points(self, prepared: Sequence[_Prepared]) -> list[PointRecord]:
        """Embed one batch (on the calling thread) and build its store records."""
        self.pipeline.refresh()  # a model switched by `train` elsewhere applies from now on
        # A batch prepared just before a switch skips the new model's space; `train`'s
        # re-embed (or the next one) fills it. Tags only ever name the model that embedded.
        batch = [item.image for item in prepared]
        embedded = self.pipeline.embed_batch(batch, self.pipeline.current_spaces(batch))
        vectors = embedded.vectors
        now = datetime.now(UTC).isoformat(timespec="seconds")
        autoencoder_model = (
            self.pipeline.model_id(VECTOR_AUTOENCODER) if VECTOR_AUTOENCODER in vectors else None
        )
        points = []
        for row, (item, found) in enumerate(zip(batch, prepared, strict=True)):
            payload: dict[str, Any] = {
                **locations_payload([found.location]),
                PAYLOAD_SHA256: item.sha256,
                PAYLOAD_WIDTH: item.width,
                PAYLOAD_HEIGHT: item.height,
                PAYLOAD_FORMAT: item.format,
                PAYLOAD_FILE_SIZE: item.file_size,
                PAYLOAD_INGESTED_AT: now,
                **item.metadata,
                **modified_at(found.location.mtime_ns),
            }
            if embedded.labels is not None:
                payload[PAYLOAD_LABELS] = embedded.labels[row]
            if autoencoder_model is not None:
                payload[PAYLOAD_AE_MODEL] = autoencoder_model
            points.append(
                PointRecord(
                    id=item.point_id,
                    vectors={space: matrix[row] for space, matrix in vectors.items()},
                    payload=payload,
                )
            )
        return points


def _ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """``map(fn, items)`` on ``pool``, in order, with at most ``window`` calls outstanding.

    ``items`` is pulled lazily, one new item per result handed out, so neither the input nor
    the results are ever materialised in full. Undelivered calls are cancelled on exit.
    """
    pending: deque[Future[R]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(fn, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()


class _BoundedWriter:
    """Upserts batches on one background thread, with at most ``depth`` batches queued.

    Errors surface on the next :meth:`submit` or on exit, so a failing store stops ingest.
    """

    def __init__(self, upsert: Callable[[list[PointRecord]], None], depth: int) -> None:
        self._upsert = upsert
        self._depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="simimg-upsert")
        self._pending: deque[Future[None]] = deque()

    def submit(self, points: list[PointRecord]) -> int:
        """Queue ``points`` for upsert (waiting while the queue is full); returns their count."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._upsert, points))
        return len(points)

    def __enter__(self) -> _BoundedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _missing_metadata(
    payload: dict[str, Any], data: bytes, mtime_ns: int | None
) -> dict[str, Any] | None:
    """Photo metadata for a point stored without it (``modified_at`` marks that it was read)."""
    if PAYLOAD_MODIFIED_AT in payload:
        return None
    return {**metadata_from_bytes(data), **modified_at(mtime_ns)}


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None  # the read that follows reports why


def _reason(exc: ImageDecodeError, *prefixes: object) -> str:
    message = str(exc)
    for prefix in prefixes:
        if message.startswith(f"{prefix}: "):
            return message[len(f"{prefix}: "):]
    return message
