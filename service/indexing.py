"""When and how the vector index (HNSW) is built: after big ingests, and on demand.

The embedded engine builds its index only when asked (:meth:`VectorStore.optimize`); a
Qdrant server indexes by itself, so there both calls do nothing. Until the index serves a
segment, Qdrant scans that segment exactly, so searches are always answered, and right.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from service.config import Settings
from service.store.base import PointFilter, VectorStore
from service.store.schema import SPACES


@dataclass(frozen=True)
class IndexReport:
    """The index after a build: vectors it serves out of those stored, and the time taken."""

    built: bool
    indexed_vectors: int
    vectors: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"built": self.built, "indexed_vectors": self.indexed_vectors,
                "vectors": self.vectors, "seconds": round(self.seconds, 3)}


def stored_vectors(store: VectorStore) -> int:
    """Vectors stored over every named space (the unit of ``indexed_vectors``)."""
    return sum(store.count(PointFilter(has_vector=space)) for space in SPACES)


def unindexed_vectors(store: VectorStore) -> int:
    return max(0, stored_vectors(store) - store.indexed_vectors())


def build_index(store: VectorStore, keep_serving: bool = False) -> IndexReport:
    """Build the index now. ``keep_serving``: the embedded store builds on a copy in a child
    process so this process keeps answering searches (see :mod:`service.store.edge_index`)."""
    started = time.perf_counter()
    if keep_serving and store.name == "edge":
        from service.store.edge_index import SwappableShard, build_index_aside

        built = build_index_aside(cast(SwappableShard, store)).optimized
    else:
        built = store.optimize()
    return IndexReport(built, store.indexed_vectors(), stored_vectors(store),
                       time.perf_counter() - started)


def index_if_due(
    settings: Settings,
    store: VectorStore,
    keep_serving: bool = False,
    notify: Callable[[str], None] | None = None,
) -> IndexReport | None:
    """Build the index when at least ``settings.index_after`` vectors are not indexed
    (after an ingest); None when it was not due (or ``index_after`` is 0)."""
    if settings.uses_server or settings.index_after <= 0:
        return None
    waiting = unindexed_vectors(store)
    if waiting < settings.index_after:
        return None
    if notify:
        notify(f"building the vector index: {waiting:,} vectors not yet indexed "
               "(SIMIMG_INDEX_AFTER=0 leaves it to `simimg-admin optimize`)")
    return build_index(store, keep_serving)
