"""Server backend: ``qdrant-client`` against a Qdrant server, or its local mode in tests.

Local mode (``location=":memory:"`` or a directory path) is qdrant-client's pure-Python
brute-force copy of the API: it ignores payload indexes, HNSW and quantization settings, and
is not thread-safe, so calls are serialised with a lock in that mode only.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from service.config import Settings
from service.errors import StoreError, StoreInUseError
from service.store import schema
from service.store.base import (
    Condition,
    Hit,
    PointRecord,
    StoreBase,
    vectors_as_lists,
)
from service.store.server_config import (
    collection_params,
    native_condition,
    plain,
    search_params,
)

T = TypeVar("T")

_INDEX_PARAMS = {
    "integer": lambda links: qm.IntegerIndexParams(type="integer", lookup=True, range=False,
                                                   enable_hnsw=links),
    "keyword": lambda links: qm.KeywordIndexParams(type="keyword", enable_hnsw=links),
    "datetime": lambda links: qm.DatetimeIndexParams(type="datetime", enable_hnsw=links),
    "geo": lambda links: qm.GeoIndexParams(type="geo", enable_hnsw=links),
}
_META_KEY = "simimg"  # simimg's record in the collection's metadata (schema version)


class ServerStore(StoreBase):
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
        self.location = repr(self.collection)
        self.expected_dims = {
            schema.VECTOR_MOBILENET: schema.MOBILENET_DIM,
            schema.VECTOR_AUTOENCODER: settings.latent_dim,
        }
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

    def _create_if_missing(self) -> bool:
        name, s = self.collection, self.settings
        if self._call(lambda: self._client.collection_exists(name)):
            return False
        try:
            self._call(
                lambda: self._client.create_collection(
                    name,
                    **collection_params(s, self.expected_dims),
                )
            )
        except StoreError:
            # another process may have created it between our check and create
            if not self._call(lambda: self._client.collection_exists(name)):
                raise
            return False
        return True

    def _info(self) -> Any:
        return self._call(lambda: self._client.get_collection(self.collection))

    def _stored_dims(self) -> dict[str, int] | None:
        vectors = self._info().config.params.vectors
        stored = vectors if isinstance(vectors, dict) else {}
        return {space: int(params.size) for space, params in stored.items()}

    def _indexed_keys(self) -> set[str]:
        return set(self._info().payload_schema or {})

    def _create_index(self, key: str, kind: str) -> None:
        with warnings.catch_warnings():
            # local mode warns that payload indexes have no effect there
            warnings.simplefilter("ignore", UserWarning)
            self._call(
                lambda: self._client.create_payload_index(
                    self.collection, key, _INDEX_PARAMS[kind](key in schema.PAYLOAD_GRAPH_LINKS),
                    wait=True,
                )
            )

    def _read_meta(self) -> dict[str, Any] | None:
        metadata = getattr(self._info().config, "metadata", None) or {}
        record = metadata.get(_META_KEY)
        return dict(record) if isinstance(record, dict) else None

    def _write_meta(self, meta: Mapping[str, Any]) -> None:
        # Qdrant merges collection metadata key by key; simimg keeps its record in one key.
        self._call(
            lambda: self._client.update_collection(
                self.collection, metadata={_META_KEY: plain(dict(meta))}
            )
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

    # -- backend hooks (see StoreBase) -------------------------------------------------

    def _upsert_batch(self, points: Sequence[PointRecord]) -> None:
        batch = [
            qm.PointStruct(id=p.id, vector=vectors_as_lists(p.vectors), payload=plain(p.payload))
            for p in points
        ]
        self._call(lambda: self._client.upsert(self.collection, batch, wait=True))

    def _update_vectors_batch(self, items: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> None:
        batch = [qm.PointVectors(id=pid, vector=vectors_as_lists(v)) for pid, v in items]
        self._call(lambda: self._client.update_vectors(self.collection, batch, wait=True))

    def _set_payload(self, payload: Mapping[str, Any], ids: list[str]) -> None:
        self._call(
            lambda: self._client.set_payload(
                self.collection, plain(payload), points=ids, wait=True
            )
        )

    def _delete_payload(self, key: str, ids: list[str]) -> None:
        self._call(
            lambda: self._client.delete_payload(self.collection, [key], points=ids, wait=True)
        )

    def _delete_points(self, ids: list[str]) -> None:
        self._call(
            lambda: self._client.delete(
                self.collection, qm.PointIdsList(points=list(ids)), wait=True
            )
        )

    def _retrieve(
        self, ids: list[str], with_payload: bool, with_vectors: bool | list[str]
    ) -> list[Any]:
        return self._call(
            lambda: self._client.retrieve(
                self.collection, ids, with_payload=with_payload, with_vectors=with_vectors
            )
        )

    def _query(
        self, vector: list[float], space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Hit]:
        return self._ranked(vector, space, k, native_filter, exact)

    def _candidates(
        self, vector: list[float], space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Any]:
        return self._points(vector, space, k, native_filter, exact, with_vectors=[space])

    def _recommend(
        self,
        positives: list[list[float]],
        negatives: list[list[float]],
        space: str,
        k: int,
        native_filter: Any,
    ) -> list[Hit]:
        query = qm.RecommendQuery(recommend=qm.RecommendInput(
            positive=positives, negative=negatives, strategy=qm.RecommendStrategy.BEST_SCORE
        ))
        return self._ranked(query, space, k, native_filter, exact=False)

    def _ranked(
        self, query: Any, space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Hit]:
        points = self._points(query, space, k, native_filter, exact)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]

    def _points(
        self, query: Any, space: str, k: int, native_filter: Any, exact: bool,
        with_vectors: list[str] | None = None,
    ) -> list[Any]:
        """The top ``k``: with payloads, or, given ``with_vectors``, with those vectors only
        and the int8 scores as they are (a re-score's candidates)."""
        result = self._call(
            lambda: self._client.query_points(
                self.collection,
                query=query,
                using=space,
                limit=k,
                query_filter=native_filter,
                search_params=search_params(self.settings, exact, rescore=not with_vectors),
                with_payload=not with_vectors,
                with_vectors=with_vectors or False,
            )
        )
        return list(result.points)

    def _query_batch(
        self,
        vectors: list[list[float]],
        space: str,
        k: int,
        native_filter: Any,
        min_score: float | None,
    ) -> list[list[Hit]]:
        requests = [
            qm.QueryRequest(
                query=vector, using=space, limit=k, filter=native_filter,
                score_threshold=min_score, with_payload=False, with_vector=False,
                params=search_params(self.settings, False, self.settings.scan_hnsw_ef),
            )
            for vector in vectors
        ]
        responses = self._call(
            lambda: self._client.query_batch_points(self.collection, requests=requests)
        )
        return [[Hit(str(p.id), float(p.score), {}) for p in r.points] for r in responses]

    def _scroll(
        self, offset: Any, limit: int, native_filter: Any, with_payload: bool | list[str],
        with_vectors: bool | list[str],
    ) -> tuple[list[Any], Any]:
        return self._call(lambda: self._client.scroll(
            self.collection, scroll_filter=native_filter, limit=limit, offset=offset,
            with_payload=with_payload, with_vectors=with_vectors,
        ))

    def indexed_vectors(self) -> int:
        return int(self._info().indexed_vectors_count or 0)

    def _count(self, native_filter: Any) -> int:
        result = self._call(
            lambda: self._client.count(self.collection, count_filter=native_filter, exact=True)
        )
        return int(result.count)

    def _facet(self, key: str, native_filter: Any, limit: int) -> list[tuple[Any, int]]:
        response = self._call(lambda: self._client.facet(
            self.collection, key, facet_filter=native_filter, limit=limit, exact=True
        ))
        return [(hit.value, int(hit.count)) for hit in response.hits]

    def _condition(self, condition: Condition) -> Any:
        return native_condition(condition)

    def _combine(self, must: list[Any], must_not: list[Any]) -> Any:
        return qm.Filter(must=must or None, must_not=must_not or None)

