"""Opening the collection for work: the store, with interrupted runs completed first."""

from __future__ import annotations

from service.cluster_labels import finish_pending_run
from service.config import Settings
from service.store import open_store
from service.store.base import VectorStore


def open_collection(settings: Settings) -> VectorStore:
    """Open the store and roll forward a clustering run that was committed but interrupted.

    Every command and the UI open the collection through here, so after a crash nobody ever
    reads a labelling that is half old and half new.
    """
    store = open_store(settings)
    try:
        finish_pending_run(settings, store)
    except BaseException:
        store.close()
        raise
    return store
