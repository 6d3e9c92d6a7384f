"""The storage interface, and the one base class that does every backend's shared work.

Two backends: :mod:`service.store.edge` (embedded, qdrant-edge-py, the default) and
:mod:`service.store.server` (qdrant-client against a server, or its local mode in tests).
Like qdrant-client's own remote/local split, :class:`StoreBase` holds the logic (batching,
scrolling, filter construction, the collection checks, schema versioning) and a backend only
translates single calls to its client: a new filter field or a new check is written once.

Vectors cross this interface as float32 numpy arrays; ids are UUID strings."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from service.errors import StoreError
from service.store import schema
from service.store.migrations import bring_up_to_date
from service.store.recommend import RecommendQueries, Recommends
from service.store.records import (
    Condition,
    Hit,
    PointFilter,
    PointRecord,
    conditions_of,
    record_from,
    vector_selector,
    vectors_as_lists,
)
from service.store.scans import NeighbourScanQueries, NeighbourScans
from service.store.vector_reads import VectorReadQueries, VectorReads

__all__ = ["Condition", "Hit", "PointFilter", "PointRecord", "StoreBase", "VectorStore",
           "conditions_of", "record_from", "vector_selector", "vectors_as_lists"]

_ID_CHUNK = 1024
_WRITE_CHUNK = 256


class VectorStore(Recommends, NeighbourScans, VectorReads, Protocol):
    """Storage operations simimg needs. Implementations must be safe to call from threads."""

    name: str  # "edge" or "server", for status output

    def ensure_collection(self) -> None:
        """Create the collection and its payload indexes if missing; check an existing one."""

    def upsert(self, points: Sequence[PointRecord]) -> None:
        """Insert or replace whole points (every vector and payload given) in one batch."""

    def update_vectors(self, vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Set named vectors of existing points: ``{point_id: {vector_name: vector}}``."""

    def set_payload(self, payload: Mapping[str, Any], ids: Sequence[str]) -> None:
        """Merge ``payload`` into the payload of each point in ``ids``."""

    def delete_payload_key(self, key: str, ids: Sequence[str]) -> None:
        """Remove ``key`` from the payload of each point in ``ids``."""

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the points ``ids`` (ids not stored are ignored)."""

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` stored in the collection."""

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[PointRecord]:
        """Points by id (missing ids are left out), with payload and optionally vectors."""

    def search(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """Top-k by cosine similarity in ``space``, best first (a full scan if ``exact``)."""

    def search_batch(
        self,
        vectors: Sequence[np.ndarray],
        space: str,
        k: int,
        where: PointFilter | None = None,
        min_score: float | None = None,
    ) -> list[list[Hit]]:
        """One top-k search per vector, run as one batch; hits below ``min_score`` are left
        out. Hits carry no payload (ids and scores only). The all-points scans' query: it
        searches the index at ``scan_hnsw_ef``, not ``hnsw_ef``."""

    def scroll(
        self,
        batch_size: int = 256,
        with_vectors: bool | Sequence[str] = False,
        where: PointFilter | None = None,
        with_payload: bool | Sequence[str] = True,
    ) -> Iterator[list[PointRecord]]:
        """Every matching point, in pages of at most ``batch_size``, in id order."""

    def count(self, where: PointFilter | None = None) -> int:
        """Number of matching points (exact)."""

    def facet(self, key: str, where: PointFilter | None = None,
              limit: int = 100) -> list[tuple[Any, int]]:
        """Exact (value, count) of an indexed payload key, most first (Qdrant's facet API)."""

    def schema_version(self) -> int:
        """The schema version the collection is stored in (see :mod:`service.store.schema`)."""

    def flush(self) -> None:
        """Make every acknowledged write durable."""

    def optimize(self) -> bool:
        """Build the vector index if the engine leaves it to the caller; True if it did."""

    def indexed_vectors(self) -> int:
        """Vectors (of every named space) that the vector index serves."""

    def close(self) -> None:
        """Flush and release the store (and, for the embedded store, its directory lock)."""


class StoreBase(RecommendQueries, NeighbourScanQueries, VectorReadQueries, ABC):
    """Shared work of every backend; subclasses implement the ``_native`` hooks below.

    ``ensure_collection`` creates or checks the collection, creates missing payload indexes
    and brings an older stored schema up to date (see :mod:`service.store.migrations`).
    """

    name: ClassVar[str]
    location: str  # where the collection lives, for messages
    expected_dims: dict[str, int]
    # Called with a one-line note when a schema migration runs (set by open_store's caller).
    notify: Callable[[str], None] | None = None

    # -- hooks every backend implements ----------------------------------------------

    @abstractmethod
    def _create_if_missing(self) -> bool:
        """Create the collection with both named vectors if absent; True if it was created."""

    @abstractmethod
    def _stored_dims(self) -> dict[str, int] | None:
        """The stored size of each named vector, or None when the backend cannot tell."""

    @abstractmethod
    def _indexed_keys(self) -> set[str]:
        """Payload keys that have an index."""

    @abstractmethod
    def _create_index(self, key: str, kind: str) -> None:
        """Create a payload index of schema type ``kind`` (see ``schema.PAYLOAD_INDEXES``)."""

    @abstractmethod
    def _read_meta(self) -> dict[str, Any] | None:
        """The collection's simimg metadata record, or None when it has none."""

    @abstractmethod
    def _write_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace the collection's simimg metadata record (atomically)."""

    @abstractmethod
    def _upsert_batch(self, points: Sequence[PointRecord]) -> None: ...

    @abstractmethod
    def _update_vectors_batch(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        ...

    @abstractmethod
    def _set_payload(self, payload: Mapping[str, Any], ids: list[str]) -> None: ...

    @abstractmethod
    def _delete_payload(self, key: str, ids: list[str]) -> None: ...

    @abstractmethod
    def _delete_points(self, ids: list[str]) -> None: ...

    @abstractmethod
    def _query(
        self, vector: list[float], space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Hit]: ...


    @abstractmethod
    def _count(self, native_filter: Any) -> int: ...

    @abstractmethod
    def _facet(self, key: str, native_filter: Any, limit: int) -> list[tuple[Any, int]]: ...

    @abstractmethod
    def _condition(self, condition: Condition) -> Any:
        """One :class:`Condition` as the backend's filter type."""

    @abstractmethod
    def _combine(self, must: list[Any], must_not: list[Any]) -> Any:
        """The backend's filter object from translated conditions."""

    # -- lifecycle -------------------------------------------------------------------

    def ensure_collection(self) -> None:
        created = self._create_if_missing()
        self._check_dims(self._stored_dims())
        have = self._indexed_keys()
        for key, kind in schema.PAYLOAD_INDEXES.items():
            if key not in have:
                self._create_index(key, kind)
        bring_up_to_date(self, created=created)

    def _check_dims(self, stored: dict[str, int] | None) -> None:
        if stored is None:
            return  # the engine's own compatibility check still applies
        for space, dim in self.expected_dims.items():
            got = stored.get(space)
            if got is None:
                raise StoreError(
                    f"collection {self.location} has no {space!r} vector; "
                    "it was not created by simimg"
                )
            if got != dim:
                setting = "latent_dim" if space == schema.VECTOR_AUTOENCODER else "schema"
                raise StoreError(
                    f"collection {self.location} has {space} vectors of dim {got}, but "
                    f"{setting} is {dim}; use the matching setting or a new collection"
                )

    def schema_version(self) -> int:
        meta = self._read_meta() or {}
        return int(meta.get("schema_version", schema.UNVERSIONED))

    def set_schema_meta(self, **values: Any) -> None:
        """Merge ``values`` into the collection's metadata record."""
        meta = dict(self._read_meta() or {})
        meta.update(values)
        self._write_meta(meta)

    # -- writes ----------------------------------------------------------------------

    def upsert(self, points: Sequence[PointRecord]) -> None:
        for start in range(0, len(points), _WRITE_CHUNK):
            self._upsert_batch(points[start : start + _WRITE_CHUNK])

    def update_vectors(self, vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        items = list(vectors.items())
        for start in range(0, len(items), _WRITE_CHUNK):
            self._update_vectors_batch(items[start : start + _WRITE_CHUNK])

    def set_payload(self, payload: Mapping[str, Any], ids: Sequence[str]) -> None:
        if ids:
            self._set_payload(payload, list(ids))

    def delete_payload_key(self, key: str, ids: Sequence[str]) -> None:
        if ids:
            self._delete_payload(key, list(ids))

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _ID_CHUNK):
            self._delete_points(list(ids[start : start + _ID_CHUNK]))

    def optimize(self) -> bool:
        return False  # overridden by backends that build their index on request

    # -- reads -----------------------------------------------------------------------

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = list(ids[start : start + _ID_CHUNK])
            found.update(str(r.id) for r in self._retrieve(chunk, False, False))
        return found

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[PointRecord]:
        records = self._retrieve(list(ids), True, vector_selector(with_vectors))
        return [record_from(r.id, r.vector, r.payload) for r in records]

    def search(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32).tolist()
        return self._query(query, space, k, self.native_filter(where), exact)

    def search_batch(
        self, vectors: Sequence[np.ndarray], space: str, k: int,
        where: PointFilter | None = None, min_score: float | None = None,
    ) -> list[list[Hit]]:
        if not len(vectors):
            return []
        queries = [np.asarray(v, dtype=np.float32).tolist() for v in vectors]
        return self._query_batch(queries, space, k, self.native_filter(where), min_score)

    def scroll(
        self, batch_size: int = 256, with_vectors: bool | Sequence[str] = False,
        where: PointFilter | None = None, with_payload: bool | Sequence[str] = True,
    ) -> Iterator[list[PointRecord]]:
        offset: Any = None
        native, wv = self.native_filter(where), vector_selector(with_vectors)
        wp = vector_selector(with_payload)
        while True:
            page, offset = self._scroll(offset, batch_size, native, wp, wv)
            records = [record_from(r.id, r.vector, r.payload) for r in page]
            if records:
                yield records
            if offset is None:
                return

    def count(self, where: PointFilter | None = None) -> int:
        return self._count(self.native_filter(where))

    def facet(self, key: str, where: PointFilter | None = None,
              limit: int = 100) -> list[tuple[Any, int]]:
        hits = self._facet(key, self.native_filter(where), limit)
        return sorted(hits, key=lambda hit: (-hit[1], str(hit[0])))

    def native_filter(self, where: PointFilter | None) -> Any:
        """``where`` in the backend's filter type (None when it selects everything)."""
        if where is None:
            return None
        must, must_not = conditions_of(where)
        if not must and not must_not:
            return None
        return self._combine(
            [self._condition(c) for c in must], [self._condition(c) for c in must_not]
        )
