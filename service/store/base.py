"""The one small interface every storage backend implements.

Two backends: :mod:`service.store.edge` (embedded, qdrant-edge-py, the default) and
:mod:`service.store.server` (qdrant-client against a server, or its local mode in tests).
Vectors cross this interface as float32 numpy arrays; ids are UUID strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class PointRecord:
    """A stored point: id, any subset of its named vectors, and its payload."""

    id: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


def record_from(point_id: object, vector: object, payload: object) -> PointRecord:
    """A PointRecord from a backend's record fields (named vectors as a dict, or none)."""
    vectors = vector if isinstance(vector, dict) else {}
    return PointRecord(
        id=str(point_id),
        vectors={name: np.asarray(v, dtype=np.float32) for name, v in vectors.items()},
        payload=dict(payload or {}),
    )


def vector_selector(with_vectors: bool | Sequence[str]) -> bool | list[str]:
    """``with_vectors`` in the form both Qdrant APIs accept: a bool or a list of names."""
    return with_vectors if isinstance(with_vectors, bool) else list(with_vectors)


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class PointFilter:
    """Which points an operation applies to; all given conditions must hold.

    ``cluster``: payload ``cluster`` equals this label.
    ``unlabelled``: True selects points without a ``cluster`` payload.
    ``has_vector`` / ``lacks_vector``: the named vector is present / absent.
    ``autoencoder_model``: payload ``autoencoder_model`` equals this id.
    ``not_autoencoder_model``: points whose ``autoencoder_model`` payload differs from this id
    (or is missing).
    """

    cluster: int | None = None
    unlabelled: bool = False
    has_vector: str | None = None
    lacks_vector: str | None = None
    autoencoder_model: str | None = None
    not_autoencoder_model: str | None = None


class VectorStore(Protocol):
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

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` stored in the collection."""

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool | Sequence[str] = False
    ) -> list[PointRecord]:
        """Points by id (missing ids are left out), with payload and optionally vectors."""

    def search(
        self, vector: np.ndarray, space: str, k: int, where: PointFilter | None = None
    ) -> list[Hit]:
        """Top-k by cosine similarity in the named vector ``space``, best first."""

    def scroll(
        self,
        batch_size: int = 256,
        with_vectors: bool | Sequence[str] = False,
        where: PointFilter | None = None,
    ) -> Iterator[list[PointRecord]]:
        """Every matching point, in pages of at most ``batch_size``, in id order."""

    def count(self, where: PointFilter | None = None) -> int:
        """Number of matching points (exact)."""

    def flush(self) -> None:
        """Make every acknowledged write durable."""

    def close(self) -> None:
        """Flush and release the store (and, for the embedded store, its directory lock)."""
