"""Embedded backend: Qdrant's own engine in-process (``qdrant-edge-py``), no server needed.

Quirks of qdrant-edge 0.9.0 that this module works around:

* every engine error is a bare ``Exception`` whose message is the only clue, so errors are
  classified by text (``WouldBlock`` = directory held by another open shard);
* point ids come back as :class:`uuid.UUID`, not ``str``;
* ``EdgeShard.retrieve`` needs ``with_payload`` and ``with_vector`` although the stubs say
  they are optional;
* a write (set_payload, delete_payload, update_vectors) naming a missing id raises "No point
  with id ..." *after* applying it to the ids that exist: not atomic.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import qdrant_edge as qe

from service.atomic import read_json, rename_dir, write_json_atomic
from service.config import Settings
from service.errors import StoreError
from service.store import schema
from service.store.base import (
    Condition,
    Hit,
    PointRecord,
    StoreBase,
    vectors_as_lists,
)
from service.store.edge_config import (
    collection_config,
    field_index,
    native_condition,
    search_params,
)
from service.store.edge_index import recover
from service.store.edge_lock import acquire_dir_lock, engine_error, in_use_error
from service.store.edge_moves import MovedPoints

T = TypeVar("T")

_CONFIG_FILE = "edge_config.json"  # written by qdrant-edge next to wal/ and segments/
_META_FILE = "simimg.json"  # simimg's own record in the shard directory (schema version)


class EdgeStore(StoreBase):
    """A :class:`~service.store.base.VectorStore` on one qdrant-edge shard directory.

    The shard is opened (created or loaded) by :meth:`ensure_collection`; any other call
    opens it on first use. One ``RLock`` serialises shard calls so threads can share a store.
    """

    name = "edge"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path: Path = settings.data_dir / "qdrant-edge" / settings.collection
        self._lock = threading.RLock()
        # Held by every write, and by an index build on a copy for as long as it runs (see
        # service.store.edge_index): a write in between would be lost at the swap.
        self._write_gate = threading.RLock()
        self._shard: qe.EdgeShard | None = None
        self._closed = False
        self._dir_lock: IO[bytes] | None = None
        self._moved = MovedPoints(self.path)  # written since the last index build
        self.location = str(self.path)
        self.expected_dims = {
            schema.VECTOR_MOBILENET: schema.MOBILENET_DIM,
            schema.VECTOR_AUTOENCODER: settings.latent_dim,
        }

    # -- lifecycle -------------------------------------------------------------------

    def _open(self) -> qe.EdgeShard:
        # Our own lock first: qdrant-edge's load() rewrites the shard's config (and may touch
        # more) before it discovers that another process holds the WAL, so a second process
        # must never get that far.
        self._dir_lock = acquire_dir_lock(
            self.path, lambda: in_use_error(self.path, self.settings.data_dir))
        try:
            recover(self.path)  # an index build interrupted by a crash
            if _shard_exists(self.path):
                # a clear message before the engine's own, terser, compatibility check
                self._check_dims(self._stored_dims())
                return qe.EdgeShard.load(str(self.path))
            config = collection_config(self.settings, self.expected_dims)
            return qe.EdgeShard.create(str(self.path), config)
        except BaseException as e:
            self._release_dir_lock()
            if isinstance(e, Exception) and not isinstance(e, StoreError):
                raise self._translate(e) from None
            raise

    def _release_dir_lock(self) -> None:
        lock, self._dir_lock = self._dir_lock, None
        if lock is not None:
            lock.close()  # closing the descriptor releases the flock

    def _require(self) -> qe.EdgeShard:
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed")
        if self._shard is None:
            self._shard = self._open()
        return self._shard

    def flush(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._call(self._shard.flush)
                self._moved.save()

    def close(self) -> None:
        """Flush and release the shard (and its directory lock). Safe to call twice."""
        with self._lock:
            shard, self._shard, self._closed = self._shard, None, True
            if shard is not None:
                try:
                    self._call(shard.flush)
                    self._moved.save()
                finally:
                    try:
                        self._call(shard.close)
                    finally:
                        self._release_dir_lock()

    def optimize(self) -> bool:
        """Build HNSW / merge segments (slow: minutes per 100k points). True if work was done.

        Holds the GIL and the store for the whole build (measured: no other thread of the
        process runs meanwhile); a process that must keep answering builds on a copy with
        :func:`service.store.edge_index.build_index_aside` instead.
        """
        with self._write_gate:
            optimized = self._run(lambda shard: shard.optimize())
            with self._lock:
                self._moved.reset()
            return optimized

    def _swap_in(self, built: Path, replaced: Path) -> None:
        """Put the shard directory ``built`` (an optimized copy) in place of the live one.

        Call with both locks held (see :func:`service.store.edge_index.build_index_aside`).
        """
        shard, self._shard = self._shard, None
        if shard is not None:
            self._call(shard.close)
        rename_dir(self.path, replaced)
        rename_dir(built, self.path)
        try:
            self._shard = self._call(lambda: qe.EdgeShard.load(str(self.path)))
        except StoreError:  # the copy does not open: back to the live shard as it was
            shutil.rmtree(self.path, ignore_errors=True)
            rename_dir(replaced, self.path)
            self._shard = self._call(lambda: qe.EdgeShard.load(str(self.path)))
            raise
        shutil.rmtree(replaced, ignore_errors=True)
        self._moved.reset()

    def indexed_vectors(self) -> int:
        """The engine's count less the vectors of points moved out since the build."""
        indexed = int(self._run(lambda shard: shard.info().indexed_vectors_count))
        with self._lock:
            return max(0, indexed - self._moved.count() * len(self.expected_dims))

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- error handling --------------------------------------------------------------

    def _translate(self, e: Exception) -> Exception:
        return engine_error(e, self.path, self.settings.data_dir)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one shard call under the lock, turning engine errors into StoreError."""
        with self._lock:
            try:
                return fn()
            except (TypeError, AttributeError):
                raise  # our bug, not the engine's
            except Exception as e:
                raise self._translate(e) from None

    def _run(self, fn: Callable[[qe.EdgeShard], T]) -> T:
        """Open the shard if needed and run ``fn(shard)`` under the lock."""
        with self._lock:
            shard = self._require()
            return self._call(lambda: fn(shard))

    def _update(self, op: qe.UpdateOperation) -> None:
        with self._write_gate:
            self._run(lambda shard: shard.update(op))

    def _note_moved(self, points: int) -> None:
        with self._lock:
            self._moved.add(points)

    # -- backend hooks (see StoreBase) -------------------------------------------------

    def _create_if_missing(self) -> bool:
        with self._lock:
            existed = self._shard is not None or _shard_exists(self.path)
            self._require()
            return not existed

    def _stored_dims(self) -> dict[str, int] | None:
        try:
            stored = json.loads((self.path / _CONFIG_FILE).read_text())["vectors"]
            return {name: int(params["size"]) for name, params in stored.items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _indexed_keys(self) -> set[str]:
        return set(self._run(lambda shard: shard.info().payload_schema))

    def _create_index(self, key: str, kind: str) -> None:
        self._update(qe.UpdateOperation.create_field_index(key, field_index(key, kind)))

    def _read_meta(self) -> dict[str, Any] | None:
        return read_json(self.path / _META_FILE)

    def _write_meta(self, meta: Mapping[str, Any]) -> None:
        with self._write_gate:
            write_json_atomic(self.path / _META_FILE, dict(meta))

    def _upsert_batch(self, points: Sequence[PointRecord]) -> None:
        batch = [qe.Point(p.id, vectors_as_lists(p.vectors), dict(p.payload)) for p in points]
        self._update(qe.UpdateOperation.upsert_points(batch))

    def _update_vectors_batch(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        # qdrant-edge's update_vectors sets only the given names; the others are kept.
        self._update(qe.UpdateOperation.update_vectors(
            [qe.PointVectors(pid, vectors_as_lists(named)) for pid, named in items]
        ))
        self._note_moved(len(items))

    def _set_payload(self, payload: Mapping[str, Any], ids: list[str]) -> None:
        self._update(qe.UpdateOperation.set_payload(ids, dict(payload)))
        self._note_moved(len(ids))

    def _delete_payload(self, key: str, ids: list[str]) -> None:
        self._update(qe.UpdateOperation.delete_payload(ids, [key]))
        self._note_moved(len(ids))

    def _delete_points(self, ids: list[str]) -> None:
        self._update(qe.UpdateOperation.delete_points(ids))
        self._note_moved(len(ids))

    def _retrieve(
        self, ids: list[str], with_payload: bool, with_vectors: bool | list[str]
    ) -> list[Any]:
        return self._run(lambda shard: shard.retrieve(ids, with_payload, with_vectors))

    def _query(
        self, vector: list[float], space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Hit]:
        return self._ranked(qe.Query.Nearest(vector, using=space), k, native_filter, exact)

    def _candidates(
        self, vector: list[float], space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Any]:
        request = qe.QueryRequest(
            limit=k, query=qe.Query.Nearest(vector, using=space), filter=native_filter,
            with_payload=False, with_vector=[space],
            params=search_params(self.settings, exact, rescore=False),
        )
        return self._run(lambda shard: shard.query(request))

    def _recommend(
        self, positives: list[list[float]], negatives: list[list[float]], space: str, k: int,
        native_filter: Any,
    ) -> list[Hit]:
        query = qe.Query.RecommendBestScore(qe.RecommendQuery(positives, negatives), using=space)
        return self._ranked(query, k, native_filter, exact=False)

    def _ranked(self, query: qe.Query, k: int, native_filter: Any, exact: bool) -> list[Hit]:
        request = qe.QueryRequest(
            limit=k, query=query, filter=native_filter, with_payload=True, with_vector=False,
            params=search_params(self.settings, exact),
        )
        points = self._run(lambda shard: shard.query(request))
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def _query_batch(
        self,
        vectors: list[list[float]],
        space: str,
        k: int,
        native_filter: Any,
        min_score: float | None,
    ) -> list[list[Hit]]:
        batch = qe.QueryBatchRequest([
            qe.QueryRequest(
                limit=k, query=qe.Query.Nearest(vector, using=space), filter=native_filter,
                with_payload=False, with_vector=False, score_threshold=min_score,
                params=search_params(self.settings, False, self.settings.scan_hnsw_ef),
            )
            for vector in vectors
        ])
        results = self._run(lambda shard: shard.query_batch(batch))
        return [[Hit(str(p.id), float(p.score), {}) for p in points] for points in results]

    def _scroll(
        self, offset: Any, limit: int, native_filter: Any, with_payload: bool | list[str],
        with_vectors: bool | list[str],
    ) -> tuple[list[Any], Any]:
        request = qe.ScrollRequest(offset=offset, limit=limit, filter=native_filter,
                                   with_payload=with_payload, with_vector=with_vectors)
        return self._run(lambda shard: shard.scroll(request))

    def _count(self, native_filter: Any) -> int:
        request = qe.CountRequest(exact=True, filter=native_filter)
        return int(self._run(lambda shard: shard.count(request)))

    def _facet(self, key: str, native_filter: Any, limit: int) -> list[tuple[Any, int]]:
        request = qe.FacetRequest(key, limit=limit, exact=True, filter=native_filter)
        response = self._run(lambda shard: shard.facet(request))
        return [(hit.value, int(hit.count)) for hit in response.hits]

    def _condition(self, condition: Condition) -> Any:
        return native_condition(condition)

    def _combine(self, must: list[Any], must_not: list[Any]) -> Any:
        return qe.Filter(must=must or None, must_not=must_not or None)


def _shard_exists(path: Path) -> bool:
    return (path / _CONFIG_FILE).exists() or (path / "segments").exists()

