"""Server backend: ``qdrant-client`` against a Qdrant server, or its local mode in tests.

Local mode (``location=":memory:"`` or a directory path) is qdrant-client's pure-Python
brute-force copy of the API: it ignores payload indexes, HNSW and quantization settings, and
is not thread-safe, so calls are serialised with a lock in that mode only.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from service.config import Settings
from service.errors import StoreError, StoreInUseError
from service.store import schema
from service.store.base import Hit, PointFilter, PointRecord, record_from, vector_selector

T = TypeVar("T")

_SCHEMA_TYPES = {
    "integer": qm.PayloadSchemaType.INTEGER,
    "keyword": qm.PayloadSchemaType.KEYWORD,
}
_BATCH = 256
_ID_CHUNK = 1024


class ServerStore:
    """A :class:`~service.store.base.VectorStore` on one Qdrant collection.

    ``ServerStore(settings)`` connects to ``settings.qdrant_url``; ``location`` (``":memory:"``
    or a directory) selects qdrant-client's local mode instead; ``client`` injects a ready
    client. The store owns whichever client it ends up with and closes it in :meth:`close`.
    """

    name = "server"

    def __init__(
        self,
        settings: Settings,
        *,
        client: QdrantClient | None = None,
        location: str | Path | None = None,
    ) -> None:
        self.settings = settings
        self.collection = settings.collection
        local = client is None and location is not None
        self._where = str(location) if local else (settings.qdrant_url or "injected client")
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if local else contextlib.nullcontext()
        )
        self._closed = False
        if client is not None:
            self._client = client
        elif location is not None:
            self._client = self._connect_local(location)
        elif settings.qdrant_url:
            self._client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
        else:
            raise StoreError("ServerStore needs QDRANT_URL, a local location, or a client")

    @staticmethod
    def _connect_local(location: str | Path) -> QdrantClient:
        if str(location) == ":memory:":
            return QdrantClient(location=":memory:")
        try:
            return QdrantClient(path=str(location))
        except RuntimeError as e:
            if "already accessed" not in str(e):
                raise StoreError(f"qdrant local mode at {location}: {e}") from None
            raise StoreInUseError(
                f"{location} is in use by another simimg process (e.g. `simimg-admin serve` "
                "or an ingest); stop it, or set QDRANT_URL to use a Qdrant server"
            ) from None

    @property
    def client(self) -> QdrantClient:
        """The underlying client, for admin tasks outside the store interface."""
        return self._client

    # -- error handling --------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one client call, turning Qdrant errors into a one-line StoreError."""
        if self._closed:
            raise StoreError(f"the store for collection {self.collection!r} is closed")
        with self._lock:
            try:
                return fn()
            except (TypeError, AttributeError):
                raise  # our bug, not Qdrant's
            except KeyError as e:  # local mode's way of saying a point id is missing
                raise StoreError(f"Qdrant ({self._where}): no point with id {e.args[0]}") from None
            except Exception as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise StoreError(f"Qdrant ({self._where}): {first}") from None

    # -- lifecycle -------------------------------------------------------------------

    def ensure_collection(self) -> None:
        name, s = self.collection, self.settings
        if not self._call(lambda: self._client.collection_exists(name)):
            quantization = (
                qm.ScalarQuantization(
                    scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, always_ram=True)
                )
                if s.quantization == "int8"
                else None
            )
            datatype = qm.Datatype(s.vector_datatype)
            vectors = {
                schema.VECTOR_MOBILENET: qm.VectorParams(
                    size=schema.MOBILENET_DIM, distance=qm.Distance.COSINE, datatype=datatype
                ),
                schema.VECTOR_AUTOENCODER: qm.VectorParams(
                    size=s.latent_dim, distance=qm.Distance.COSINE, datatype=datatype
                ),
            }
            try:
                self._call(
                    lambda: self._client.create_collection(
                        name,
                        vectors_config=vectors,
                        hnsw_config=qm.HnswConfigDiff(m=s.hnsw_m, ef_construct=s.hnsw_ef_construct),
                        quantization_config=quantization,
                        shard_number=s.shard_number,
                        replication_factor=s.replication_factor,
                    )
                )
            except StoreError:
                # another process may have created it between our check and create
                if not self._call(lambda: self._client.collection_exists(name)):
                    raise
        info = self._call(lambda: self._client.get_collection(name))
        self._check_dims(info.config.params.vectors)
        have = set(info.payload_schema or {})
        for key, kind in schema.PAYLOAD_INDEXES.items():
            if key not in have:
                with warnings.catch_warnings():
                    # local mode warns that payload indexes have no effect there
                    warnings.simplefilter("ignore", UserWarning)
                    self._call(
                        lambda key=key, kind=kind: self._client.create_payload_index(
                            name, key, _SCHEMA_TYPES[kind], wait=True
                        )
                    )

    def _check_dims(self, vectors: Any) -> None:
        stored = vectors if isinstance(vectors, dict) else {}
        expected = {
            schema.VECTOR_MOBILENET: schema.MOBILENET_DIM,
            schema.VECTOR_AUTOENCODER: self.settings.latent_dim,
        }
        for space, dim in expected.items():
            params = stored.get(space)
            if params is None:
                raise StoreError(
                    f"collection {self.collection!r} has no {space!r} vector; "
                    "it was not created by simimg"
                )
            if params.size != dim:
                setting = "latent_dim" if space == schema.VECTOR_AUTOENCODER else "schema"
                raise StoreError(
                    f"collection {self.collection!r} has {space} vectors of dim {params.size}, "
                    f"but {setting} is {dim}; use the matching setting or a new collection"
                )

    def flush(self) -> None:
        """Nothing to do: every write is sent with ``wait=True`` and the server has a WAL."""

    def close(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._closed = True
            self._client.close()

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------

    def upsert(self, points: Sequence[PointRecord]) -> None:
        for start in range(0, len(points), _BATCH):
            batch = [
                qm.PointStruct(id=p.id, vector=_vectors_out(p.vectors), payload=_plain(p.payload))
                for p in points[start : start + _BATCH]
            ]
            self._call(lambda batch=batch: self._client.upsert(self.collection, batch, wait=True))

    def update_vectors(self, vectors: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        items = [qm.PointVectors(id=pid, vector=_vectors_out(v)) for pid, v in vectors.items()]
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            self._call(
                lambda batch=batch: self._client.update_vectors(self.collection, batch, wait=True)
            )

    def set_payload(self, payload: Mapping[str, Any], ids: Sequence[str]) -> None:
        if ids:
            self._call(
                lambda: self._client.set_payload(
                    self.collection, _plain(payload), points=list(ids), wait=True
                )
            )

    def delete_payload_key(self, key: str, ids: Sequence[str]) -> None:
        if ids:
            self._call(
                lambda: self._client.delete_payload(
                    self.collection, [key], points=list(ids), wait=True
                )
            )

    # -- reads -----------------------------------------------------------------------

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = list(ids[start : start + _ID_CHUNK])
            records = self._call(
                lambda chunk=chunk: self._client.retrieve(
                    self.collection, chunk, with_payload=False, with_vectors=False
                )
            )
            found.update(str(r.id) for r in records)
        return found

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[PointRecord]:
        wv = vector_selector(with_vectors)
        records = self._call(
            lambda: self._client.retrieve(
                self.collection, list(ids), with_payload=True, with_vectors=wv
            )
        )
        return [record_from(r.id, r.vector, r.payload) for r in records]

    def search(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None
    ) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32).tolist()
        result = self._call(
            lambda: self._client.query_points(
                self.collection,
                query=query,
                using=space,
                limit=k,
                query_filter=_filter(where),
                with_payload=True,
                with_vectors=False,
            )
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]

    def scroll(
        self,
        batch_size: int = 256,
        with_vectors: bool | Sequence[str] = False,
        where: PointFilter | None = None,
    ) -> Iterator[list[PointRecord]]:
        offset: Any = None
        flt, wv = _filter(where), vector_selector(with_vectors)
        while True:
            records, offset = self._call(
                lambda offset=offset: self._client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=batch_size,
                    offset=offset,
                    with_payload=True,
                    with_vectors=wv,
                )
            )
            if records:
                yield [record_from(r.id, r.vector, r.payload) for r in records]
            if offset is None:
                return

    def count(self, where: PointFilter | None = None) -> int:
        result = self._call(
            lambda: self._client.count(self.collection, count_filter=_filter(where), exact=True)
        )
        return int(result.count)


def _vectors_out(vectors: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    return {name: np.asarray(v, dtype=np.float32).tolist() for name, v in vectors.items()}


def _plain(value: Any) -> Any:
    """Payload with numpy scalars/arrays turned into JSON types (the HTTP client needs that)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value




def _filter(where: PointFilter | None) -> qm.Filter | None:
    """Translate a :class:`PointFilter` to qdrant-client's filter models (all conditions AND)."""
    if where is None:
        return None
    must: list[Any] = []
    must_not: list[Any] = []
    if where.cluster is not None:
        must.append(
            qm.FieldCondition(
                key=schema.PAYLOAD_CLUSTER, match=qm.MatchValue(value=int(where.cluster))
            )
        )
    if where.unlabelled:
        must.append(qm.IsEmptyCondition(is_empty=qm.PayloadField(key=schema.PAYLOAD_CLUSTER)))
    if where.has_vector:
        must.append(qm.HasVectorCondition(has_vector=where.has_vector))
    if where.lacks_vector:
        must_not.append(qm.HasVectorCondition(has_vector=where.lacks_vector))
    if where.autoencoder_model is not None:
        must.append(
            qm.FieldCondition(
                key=schema.PAYLOAD_AE_MODEL, match=qm.MatchValue(value=where.autoencoder_model)
            )
        )
    if where.not_autoencoder_model is not None:
        must_not.append(
            qm.FieldCondition(
                key=schema.PAYLOAD_AE_MODEL,
                match=qm.MatchValue(value=where.not_autoencoder_model),
            )
        )
    if not must and not must_not:
        return None
    return qm.Filter(must=must or None, must_not=must_not or None)
