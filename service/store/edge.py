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

import fcntl
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import qdrant_edge as qe

from service.config import Settings
from service.errors import StoreError, StoreInUseError
from service.holder import describe_holder
from service.store import schema
from service.store.base import Hit, PointFilter, PointRecord, record_from, vector_selector

T = TypeVar("T")

_SCHEMA_TYPES = {
    "integer": qe.PayloadSchemaType.Integer,
    "keyword": qe.PayloadSchemaType.Keyword,
}
_DATATYPES = {
    "float16": qe.VectorStorageDatatype.Float16,
    "float32": qe.VectorStorageDatatype.Float32,
}
_CONFIG_FILE = "edge_config.json"  # written by qdrant-edge next to wal/ and segments/
_ID_CHUNK = 1024
_UPSERT_CHUNK = 256


class EdgeStore:
    """A :class:`~service.store.base.VectorStore` on one qdrant-edge shard directory.

    The shard is opened (created or loaded) by :meth:`ensure_collection`; any other call
    opens it on first use. One ``RLock`` serialises shard calls so threads can share a store.
    """

    name = "edge"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path: Path = settings.data_dir / "qdrant-edge" / settings.collection
        self._lock = threading.RLock()
        self._shard: qe.EdgeShard | None = None
        self._closed = False
        self._dir_lock: IO[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def _vectors_config(self) -> dict[str, qe.EdgeVectorParams]:
        datatype = _DATATYPES[self.settings.vector_datatype]
        return {
            schema.VECTOR_MOBILENET: qe.EdgeVectorParams(
                schema.MOBILENET_DIM, distance=qe.Distance.Cosine, datatype=datatype
            ),
            schema.VECTOR_AUTOENCODER: qe.EdgeVectorParams(
                self.settings.latent_dim, distance=qe.Distance.Cosine, datatype=datatype
            ),
        }

    def _check_stored_dims(self) -> None:
        """Compare the dims persisted in the shard with the settings, for a clear message."""
        try:
            stored = json.loads((self.path / _CONFIG_FILE).read_text())["vectors"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # the engine's own compatibility check on load still applies
        expected = {
            schema.VECTOR_MOBILENET: schema.MOBILENET_DIM,
            schema.VECTOR_AUTOENCODER: self.settings.latent_dim,
        }
        for space, dim in expected.items():
            got = stored.get(space, {}).get("size")
            if got is not None and got != dim:
                setting = "latent_dim" if space == schema.VECTOR_AUTOENCODER else "schema"
                raise StoreError(
                    f"collection at {self.path} has {space} vectors of dim {got}, but "
                    f"{setting} is {dim}; use the matching setting or a new collection"
                )

    def _open(self) -> qe.EdgeShard:
        # Our own lock first: qdrant-edge's load() rewrites the shard's config (and may touch
        # more) before it discovers that another process holds the WAL, so a second process
        # must never get that far.
        self._dir_lock = _acquire_dir_lock(self.path, self._in_use_error)
        try:
            exists = (self.path / _CONFIG_FILE).exists() or (self.path / "segments").exists()
            if exists:
                self._check_stored_dims()
                return qe.EdgeShard.load(str(self.path))
            return qe.EdgeShard.create(str(self.path),
                                       qe.EdgeConfig(vectors=self._vectors_config()))
        except BaseException as e:
            self._release_dir_lock()
            if isinstance(e, Exception) and not isinstance(e, StoreError):
                raise self._translate(e) from None
            raise

    def _release_dir_lock(self) -> None:
        lock, self._dir_lock = self._dir_lock, None
        if lock is not None:
            lock.close()  # closing the descriptor releases the flock

    def ensure_collection(self) -> None:
        with self._lock:
            have = set(self._run(lambda shard: shard.info().payload_schema))
            for key, kind in schema.PAYLOAD_INDEXES.items():
                if key not in have:
                    self._update(qe.UpdateOperation.create_field_index(key, _SCHEMA_TYPES[kind]))

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

    def close(self) -> None:
        """Flush and release the shard (and its directory lock). Safe to call twice."""
        with self._lock:
            shard, self._shard, self._closed = self._shard, None, True
            if shard is not None:
                try:
                    self._call(shard.flush)
                finally:
                    try:
                        self._call(shard.close)
                    finally:
                        self._release_dir_lock()

    def optimize(self) -> bool:
        """Build HNSW / merge segments (slow: minutes per 100k points). True if work was done."""
        return self._run(lambda shard: shard.optimize())

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- error handling --------------------------------------------------------------

    def _in_use_error(self) -> StoreInUseError:
        holder = describe_holder(self.settings.data_dir)
        who = holder or "another simimg process (e.g. `simimg-admin serve` or an ingest)"
        return StoreInUseError(
            f"{self.path} is in use by {who}; stop it, or set QDRANT_URL to use a "
            "Qdrant server that many processes can share"
        )

    def _translate(self, e: Exception) -> Exception:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "WouldBlock" in msg:
            return self._in_use_error()
        return StoreError(f"qdrant-edge: {msg}")

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
        self._run(lambda shard: shard.update(op))

    # -- writes ----------------------------------------------------------------------

    def upsert(self, points: Sequence[PointRecord]) -> None:
        for start in range(0, len(points), _UPSERT_CHUNK):
            batch = [
                qe.Point(p.id, _vectors_out(p.vectors), dict(p.payload))
                for p in points[start : start + _UPSERT_CHUNK]
            ]
            self._update(qe.UpdateOperation.upsert_points(batch))

    def update_vectors(self, vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        # qdrant-edge's update_vectors sets only the given names; the others are kept.
        items = [qe.PointVectors(pid, _vectors_out(named)) for pid, named in vectors.items()]
        for start in range(0, len(items), _UPSERT_CHUNK):
            self._update(qe.UpdateOperation.update_vectors(items[start : start + _UPSERT_CHUNK]))

    def set_payload(self, payload: Mapping[str, Any], ids: Sequence[str]) -> None:
        if ids:
            self._update(qe.UpdateOperation.set_payload(list(ids), dict(payload)))

    def delete_payload_key(self, key: str, ids: Sequence[str]) -> None:
        if ids:
            self._update(qe.UpdateOperation.delete_payload(list(ids), [key]))

    # -- reads -----------------------------------------------------------------------

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = list(ids[start : start + _ID_CHUNK])
            records = self._run(lambda shard, chunk=chunk: shard.retrieve(chunk, False, False))
            found.update(str(r.id) for r in records)
        return found

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[PointRecord]:
        wv = vector_selector(with_vectors)
        records = self._run(lambda shard: shard.retrieve(list(ids), True, wv))
        return [record_from(r.id, r.vector, r.payload) for r in records]

    def search(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None
    ) -> list[Hit]:
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist(), using=space),
            filter=_filter(where),
            with_payload=True,
            with_vector=False,
        )
        points = self._run(lambda shard: shard.query(request))
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def scroll(
        self,
        batch_size: int = 256,
        with_vectors: bool | Sequence[str] = False,
        where: PointFilter | None = None,
    ) -> Iterator[list[PointRecord]]:
        offset: Any = None
        flt, wv = _filter(where), vector_selector(with_vectors)
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=batch_size, filter=flt, with_payload=True, with_vector=wv
            )
            records, offset = self._run(lambda shard, request=request: shard.scroll(request))
            if records:
                yield [record_from(r.id, r.vector, r.payload) for r in records]
            if offset is None:
                return

    def count(self, where: PointFilter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=_filter(where))
        return int(self._run(lambda shard: shard.count(request)))


def _vectors_out(vectors: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    return {name: np.asarray(v, dtype=np.float32).tolist() for name, v in vectors.items()}




def _filter(where: PointFilter | None) -> qe.Filter | None:
    """Translate a :class:`PointFilter` to qdrant-edge's filter types (all conditions AND)."""
    if where is None:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if where.cluster is not None:
        must.append(
            qe.FieldCondition(schema.PAYLOAD_CLUSTER, match=qe.MatchValue(int(where.cluster)))
        )
    if where.unlabelled:
        must.append(qe.IsEmptyCondition(schema.PAYLOAD_CLUSTER))
    if where.has_vector:
        must.append(qe.HasVectorCondition(where.has_vector))
    if where.lacks_vector:
        must_not.append(qe.HasVectorCondition(where.lacks_vector))
    if where.autoencoder_model is not None:
        must.append(
            qe.FieldCondition(
                schema.PAYLOAD_AE_MODEL, match=qe.MatchValue(where.autoencoder_model)
            )
        )
    if where.not_autoencoder_model is not None:
        must_not.append(
            qe.FieldCondition(
                schema.PAYLOAD_AE_MODEL, match=qe.MatchValue(where.not_autoencoder_model)
            )
        )
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def _acquire_dir_lock(path: Path, in_use: Callable[[], StoreInUseError]) -> IO[bytes]:
    """An exclusive, non-blocking flock on ``<shard dir>.lock``, held until closed.

    flock locks belong to the open file description, so a second EdgeStore on the same
    directory is refused in the same process as well as in another one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 - held open
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise in_use() from None
    return handle
