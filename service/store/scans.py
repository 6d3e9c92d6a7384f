"""Every point's nearest neighbours, page by page: the all-points scan of ``cluster``.

The scan reads each stored vector once and sends it straight back as a query, so it keeps
the vector in the form the client returns it (a list of floats) instead of turning it into
numpy and back (about 0.1 ms a point, measured at 1M points: 100 s of a 20-minute
clustering). Both steps run under the GIL (qdrant-edge's ``query_batch`` holds it), so the
time saved is wall-clock time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Protocol

from service.store.records import Hit, PointFilter, named_vectors


class NeighbourScans(Protocol):
    """The scan part of :class:`~service.store.base.VectorStore`."""

    def neighbour_pages(
        self, space: str, k: int, where: PointFilter | None = None,
        min_score: float | None = None, page: int = 512,
    ) -> Iterator[tuple[list[str], list[list[Hit]]]]:
        """For each page of points matching ``where`` that have a ``space`` vector: their
        ids and, for each, its top-``k`` among the matching points at or above
        ``min_score`` (itself included), as ``search_batch`` finds them."""


class NeighbourScanQueries(ABC):
    """``VectorStore.neighbour_pages`` for :class:`~service.store.base.StoreBase`."""

    @abstractmethod
    def _scroll(
        self, offset: Any, limit: int, native_filter: Any, with_payload: bool | list[str],
        with_vectors: bool | list[str],
    ) -> tuple[list[Any], Any]:
        """One page of a scroll as the client returns it (records with ``id``, ``vector``
        and ``payload``) and the offset of the next (None at the end)."""

    @abstractmethod
    def _query_batch(
        self, vectors: list[list[float]], space: str, k: int, native_filter: Any,
        min_score: float | None,
    ) -> list[list[Hit]]:
        """One result list per vector, ids and scores only, in the order given (the query of
        ``search_batch`` too)."""

    @abstractmethod
    def native_filter(self, where: PointFilter | None) -> Any: ...

    def neighbour_pages(
        self, space: str, k: int, where: PointFilter | None = None,
        min_score: float | None = None, page: int = 512,
    ) -> Iterator[tuple[list[str], list[list[Hit]]]]:
        native: Any = self.native_filter(where)
        offset: Any = None
        while True:
            records, offset = self._scroll(offset, page, native, False, [space])
            ids, vectors = named_vectors(((r.id, r.vector) for r in records), space)
            if ids:
                yield ids, self._query_batch(vectors, space, k, native, min_score)
            if offset is None:
                return
