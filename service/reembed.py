"""Re-embedding every point's ``autoencoder`` vector with a new model, resumably.

A trained model becomes current only through :func:`activate_model`, after every point
carries its vectors. A ``train`` killed during the re-embed leaves the model PENDING;
:func:`finish_pending_model` (run by every command when it opens the collection) completes
the re-embed and the switch, so the old model's shrinking coverage is never left behind.

Points still to do are found with ``PointFilter(not_autoencoder_model=version)``, so a run
that was killed resumes where it stopped. Per batch, the old model tag is removed first,
then the vector is written, then the new tag is set: at every instant a point's vector
and its tag agree or the point carries no tag, and searches (filtered on the current
model's tag) never compare vectors of two models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.autoencoder.files import CURRENT, PENDING, clear_pointer, read_pointer, write_pointer
from service.config import Settings
from service.embedders.autoencoder import AutoencoderEmbedder, load_autoencoder_version
from service.errors import ImageDecodeError
from service.indexing import index_if_due
from service.locations import stored_file
from service.pipeline import decode_file
from service.store.base import PointFilter, PointRecord, VectorStore
from service.store.schema import PAYLOAD_AE_MODEL, VECTOR_AUTOENCODER


@dataclass
class ReembedReport:
    embedded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (point id or file, reason)
    seconds: float = 0.0


def _prepare(
    record: PointRecord, embedder: AutoencoderEmbedder, settings: Settings
) -> np.ndarray | str:
    """The embedder's input for a point's file, or the reason it cannot be read."""
    try:
        _, decoded = decode_file(stored_file(record.payload), settings, embedder.min_side)
    except ImageDecodeError as exc:
        return str(exc)
    return embedder.preprocess(decoded.image)


def _describe(record: PointRecord) -> str:
    try:
        return str(stored_file(record.payload))
    except ImageDecodeError:
        return record.id


def pending_count(store: VectorStore, version: str) -> int:
    return store.count(PointFilter(not_autoencoder_model=version))


def reembed_collection(
    store: VectorStore,
    settings: Settings,
    embedder: AutoencoderEmbedder,
    advance: Callable[[int], None] | None = None,
) -> ReembedReport:
    """Give every point an ``autoencoder`` vector from ``embedder``'s model.

    Repeats passes until one finds nothing new to do (points ingested meanwhile by another
    process are picked up). Points whose file cannot be read keep their old tag, so no
    search in the new model's space sees them; they are listed in the report.
    """
    started = time.perf_counter()
    report = ReembedReport()
    version = embedder.model_id
    where = PointFilter(not_autoencoder_model=version)
    failed_ids: set[str] = set()
    with ThreadPoolExecutor(max(1, settings.decode_workers)) as pool:
        while True:
            done_this_pass = 0
            for page in store.scroll(batch_size=settings.batch_size, where=where):
                todo = [r for r in page if r.id not in failed_ids]
                inputs = list(pool.map(lambda r: _prepare(r, embedder, settings), todo))
                ok = [(r, x) for r, x in zip(todo, inputs, strict=True) if not isinstance(x, str)]
                for record, reason in zip(todo, inputs, strict=True):
                    if isinstance(reason, str):
                        failed_ids.add(record.id)
                        report.failed.append((_describe(record), reason))
                if ok:
                    ids = [r.id for r, _ in ok]
                    vectors = embedder.embed(np.stack([x for _, x in ok]))
                    store.delete_payload_key(PAYLOAD_AE_MODEL, ids)
                    store.update_vectors(
                        {pid: {VECTOR_AUTOENCODER: v} for pid, v in zip(ids, vectors, strict=True)}
                    )
                    store.set_payload({PAYLOAD_AE_MODEL: version}, ids)
                done_this_pass += len(ok)
                if advance is not None:
                    advance(len(todo))
            report.embedded += done_this_pass
            if done_this_pass == 0:
                break
    store.flush()
    report.seconds = time.perf_counter() - started
    return report


def activate_model(
    store: VectorStore,
    settings: Settings,
    version: str,
    advance: Callable[[int], None] | None = None,
) -> ReembedReport:
    """Re-embed every point with ``version``, then make it CURRENT and clear PENDING."""
    report = reembed_collection(store, settings, load_autoencoder_version(settings, version),
                                advance)
    write_pointer(settings, CURRENT, version)
    clear_pointer(settings, PENDING)
    index_if_due(settings, store, keep_serving=True)  # new vectors are not in the index yet
    return report


def finish_pending_model(
    settings: Settings, store: VectorStore, notify: Callable[[str], None] | None = None
) -> ReembedReport | None:
    """Complete an interrupted ``train``: finish its re-embed and switch. None if none."""
    version = read_pointer(settings, PENDING)
    if version is None:
        return None
    if notify is not None:
        notify(f"finishing the interrupted re-embed of autoencoder {version} "
               f"({pending_count(store, version)} images left)")
    return activate_model(store, settings, version)
