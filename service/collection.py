"""Opening the collection for work: the store, with interrupted runs completed first."""

from __future__ import annotations

from collections.abc import Callable

from service.cluster_labels import finish_pending_run
from service.config import Settings
from service.reembed import finish_pending_model
from service.store import open_store
from service.store.base import VectorStore


def open_collection(
    settings: Settings,
    *,
    finish_autoencoder: bool = True,
    notify: Callable[[str], None] | None = None,
) -> VectorStore:
    """Open the store and roll interrupted work forward, like a database replaying its log.

    * a clustering run that was committed but killed while writing labels is completed;
    * an autoencoder that was trained but killed during its re-embed is re-embedded to the
      end and made current (``finish_autoencoder=False`` leaves that to ``train``, which
      resumes it itself).

    Every command and the UI open the collection through here, so after a crash nobody reads
    a labelling that is half old and half new, or an autoencoder space that covers only part
    of the collection. ``notify`` receives a one-line note when there is work to finish.
    """
    store = open_store(settings, notify)
    try:
        finish_pending_run(settings, store)
        if finish_autoencoder:
            finish_pending_model(settings, store, notify)
    except BaseException:
        store.close()
        raise
    return store
