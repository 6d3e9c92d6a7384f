"""Stored vectors read by id without their payloads: a re-score's read of its candidates.

The vectors become one float32 matrix straight from the float lists the client returns, with
no :class:`~service.store.records.PointRecord` and no payload per point: the whitened
re-score (:mod:`service.query_whitening`) reads 50 candidates per query and needs payloads
only for the few it keeps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from service.store.records import named_vectors


class VectorReads(Protocol):
    """The vector-read part of :class:`~service.store.base.VectorStore`."""

    def vectors(self, ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        """Those of ``ids`` that have a ``space`` vector, in no particular order, and their
        vectors as the rows of one float32 matrix ((0, 0) when there is none)."""


class VectorReadQueries(ABC):
    """``VectorStore.vectors`` for :class:`~service.store.base.StoreBase`."""

    @abstractmethod
    def _retrieve(
        self, ids: list[str], with_payload: bool, with_vectors: bool | list[str]
    ) -> list[Any]:
        """Points by id as the client returns them (records with ``id``, ``vector`` and
        ``payload``); missing ids are left out."""

    def vectors(self, ids: Sequence[str], space: str) -> tuple[list[str], np.ndarray]:
        records = self._retrieve(list(ids), False, [space])
        found, rows = named_vectors(((r.id, r.vector) for r in records), space)
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        return found, np.array(rows, np.float32)
