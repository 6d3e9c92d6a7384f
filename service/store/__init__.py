"""Vector storage: pick a backend from the settings.

The backends are imported lazily so that importing this package does not load both
qdrant-edge and qdrant-client.
"""

from __future__ import annotations

from collections.abc import Callable

from service.config import Settings
from service.store.base import Hit, PointFilter, PointRecord, StoreBase, VectorStore

__all__ = ["Hit", "PointFilter", "PointRecord", "VectorStore", "open_store", "ready"]


def open_store(settings: Settings, notify: Callable[[str], None] | None = None) -> VectorStore:
    """A ready store: a Qdrant server when ``QDRANT_URL`` is set, else the embedded engine.

    Raises ``StoreInUseError`` when the embedded directory is held by another process and
    ``StoreError`` when the existing collection does not match the settings. An older
    collection schema is migrated in place; ``notify`` receives a one-line note when it is.
    """
    store: StoreBase
    if settings.qdrant_url:
        from service.store.server import ServerStore

        store = ServerStore(settings)
    else:
        from service.store.edge import EdgeStore

        store = EdgeStore(settings)
    return ready(store, notify)


def ready(store: StoreBase, notify: Callable[[str], None] | None = None) -> StoreBase:
    """``store`` with its collection ensured (and migrated); closed again if that fails."""
    store.notify = notify
    try:
        store.ensure_collection()
    except BaseException:
        store.close()
        raise
    return store
