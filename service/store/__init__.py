"""Vector storage: pick a backend from the settings.

The backends are imported lazily so that importing this package does not load both
qdrant-edge and qdrant-client.
"""

from __future__ import annotations

from service.config import Settings
from service.store.base import Hit, PointFilter, PointRecord, VectorStore

__all__ = ["Hit", "PointFilter", "PointRecord", "VectorStore", "open_store", "ready"]


def open_store(settings: Settings) -> VectorStore:
    """A ready store: a Qdrant server when ``QDRANT_URL`` is set, else the embedded engine.

    Raises ``StoreInUseError`` when the embedded directory is held by another process and
    ``StoreError`` when the existing collection does not match the settings.
    """
    store: VectorStore
    if settings.qdrant_url:
        from service.store.server import ServerStore

        store = ServerStore(settings)
    else:
        from service.store.edge import EdgeStore

        store = EdgeStore(settings)
    return ready(store)


def ready(store: VectorStore) -> VectorStore:
    """``store`` with its collection ensured; closed again if that fails."""
    try:
        store.ensure_collection()
    except BaseException:
        store.close()
        raise
    return store
