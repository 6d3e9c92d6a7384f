"""Stored vectors read without payloads, straight into one float32 matrix: a re-score's reads.

The whitened re-score (:mod:`service.query_whitening`) reads 50 candidates' vectors per
query and needs payloads only for the few it keeps. Its candidates come with their vectors
in the same query (at 1M points as fast as without them, and a second read saved), and the
client's float lists become one matrix directly, with no
:class:`~service.store.records.PointRecord` per point.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from service.store.records import PointFilter, float32_rows, named_vectors


class VectorReads(Protocol):
    """The vector-read part of :class:`~service.store.base.VectorStore`."""

    def vectors(self, ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        """Those of ``ids`` that have a ``space`` vector, in no particular order, and their
        vectors as the rows of one float32 matrix ((0, 0) when there is none)."""

    def candidates(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None,
        exact: bool = False,
    ) -> tuple[list[str], np.ndarray]:
        """The top ``k`` for a caller that re-scores them itself: their ids, best first by the
        int8 copies' scores when quantized (not re-scored from the originals), and their
        stored ``space`` vectors as the rows of one float32 matrix (a full scan if ``exact``)."""


class VectorReadQueries(ABC):
    """``VectorStore.vectors`` and ``candidates`` for :class:`~service.store.base.StoreBase`."""

    @abstractmethod
    def _retrieve(
        self, ids: list[str], with_payload: bool, with_vectors: bool | list[str]
    ) -> list[Any]:
        """Points by id as the client returns them (records with ``id``, ``vector`` and
        ``payload``); missing ids are left out."""

    @abstractmethod
    def _candidates(
        self, vector: list[float], space: str, k: int, native_filter: Any, exact: bool
    ) -> list[Any]:
        """The top ``k`` as the client returns them, with their ``space`` vectors, no payload,
        int8 scores as they are."""

    @abstractmethod
    def native_filter(self, where: PointFilter | None) -> Any: ...

    def vectors(self, ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        records = self._retrieve(list(ids), False, [space])
        return _as_matrix(((r.id, r.vector) for r in records), space)

    def candidates(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None,
        exact: bool = False,
    ) -> tuple[list[str], np.ndarray]:
        query = np.asarray(vector, dtype=np.float32).tolist()
        points = self._candidates(query, space, k, self.native_filter(where), exact)
        return _as_matrix(((p.id, p.vector) for p in points), space)


def _as_matrix(
    points: Iterable[tuple[object, object]], space: str
) -> tuple[list[str], np.ndarray]:
    ids, rows = named_vectors(points, space)
    return ids, float32_rows(rows)
