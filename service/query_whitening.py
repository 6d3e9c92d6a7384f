"""Whitened ``mobilenet`` search without changing a stored vector.

The whitening (:mod:`service.whitening`) is learned from the collection's own stored
``mobilenet`` vectors and kept in ``DATA_DIR/state/whitening-mobilenet.npz`` with a version.
A search then runs in two steps (measured in benchmarks/retrieval_eval.py):

1. the query is whitened twice over (``Whitening.query_side``): its cosine with a plain
   stored vector ranks the collection by the whitened inner product, so Qdrant's ordinary
   nearest-neighbour search over the plain vectors finds the candidates;
2. the top candidates' stored vectors are whitened too and re-scored by the full whitened
   cosine, which is the score shown (an identical image scores 1.0).

It belongs to one collection (the file name carries the collection's name and the file
records where the collection lives). It is re-learned when the number of points has moved
by :data:`REFIT_CHANGE` since the fit (checked at most every :data:`CHECK_SECONDS`), and is
not used below ``SIMIMG_WHITEN_MIN_POINTS`` images (``Settings.whiten_min_points``).
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.atomic import write_bytes_atomic
from service.config import Settings
from service.embedders.base import l2_normalise
from service.store.base import Hit, PointFilter, VectorStore
from service.store.schema import VECTOR_MOBILENET
from service.whitening import Whitening, fit_whitening

FORMAT = 1
RERANK_DEPTH = 50  # candidates re-scored by the full whitened cosine (at least k)
REFIT_CHANGE = 0.25  # re-learn when the point count moved by this fraction since the fit
MAX_FIT_POINTS = 20_000  # learn from at most this many points (ids are content hashes,
#                          so the first ones in id order are an unbiased sample)
CHECK_SECONDS = 30.0  # how often a long-running searcher compares the point count


@dataclass(frozen=True)
class StoredWhitening:
    """A learned whitening and what it was learned from."""

    whitening: Whitening
    version: str  # changes with every fit
    model_id: str  # the mobilenet model whose vectors it was learned on
    points: int  # collection size at the fit
    shrinkage: float
    location: str  # the collection it was learned on (the store's location)


def whitening_path(settings: Settings) -> Path:
    return settings.state_dir / f"whitening-{settings.collection}-mobilenet.npz"


def learn_whitening(store: VectorStore, model_id: str, shrinkage: float) -> StoredWhitening:
    """Fit on up to :data:`MAX_FIT_POINTS` stored ``mobilenet`` vectors."""
    rows: list[np.ndarray] = []
    for page in store.scroll(batch_size=512, with_vectors=[VECTOR_MOBILENET], with_payload=False):
        rows += [r.vectors[VECTOR_MOBILENET] for r in page if VECTOR_MOBILENET in r.vectors]
        if len(rows) >= MAX_FIT_POINTS:
            break
    points = store.count()
    whitening = fit_whitening(np.stack(rows[:MAX_FIT_POINTS]), shrinkage=shrinkage)
    version = f"w{FORMAT}-{points}-{time.time_ns()}"
    location = str(getattr(store, "location", ""))
    return StoredWhitening(whitening, version, model_id, points, shrinkage, location)


def save_whitening(path: Path, stored: StoredWhitening) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer, format=FORMAT, mean=stored.whitening.mean, matrix=stored.whitening.matrix,
        version=stored.version, model_id=stored.model_id, points=stored.points,
        shrinkage=stored.shrinkage, location=stored.location,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, buffer.getvalue())


def load_whitening(path: Path) -> StoredWhitening | None:
    """The saved whitening, or None if there is none (or it is unreadable or of a newer format)."""
    try:
        with np.load(path) as data:
            if int(data["format"]) != FORMAT:
                return None
            return StoredWhitening(
                Whitening(mean=data["mean"], matrix=data["matrix"]),
                version=str(data["version"]),
                model_id=str(data["model_id"]),
                points=int(data["points"]),
                shrinkage=float(data["shrinkage"]),
                location=str(data["location"]),
            )
    except (OSError, ValueError, KeyError):
        return None


class QueryWhitening:
    """The current whitening for one store: loaded from disk, learned or re-learned on demand."""

    def __init__(self, settings: Settings, store: VectorStore) -> None:
        """``settings``: the store's own (its data dir and collection name)."""
        self.settings = settings
        self.store = store
        self.path = whitening_path(settings)
        self._lock = threading.Lock()
        self._cached: StoredWhitening | None = None
        self._mtime: int | None = None
        self._checked_at = float("-inf")

    def current(self, model_id: str) -> StoredWhitening | None:
        """The whitening to search ``model_id``'s vectors with; None for a small collection."""
        if self.settings.whiten_shrinkage <= 0:
            return None
        with self._lock:
            self._reload_if_changed()
            now = time.monotonic()
            stale = (
                self._cached is None
                or self._cached.model_id != model_id
                or self._cached.shrinkage != self.settings.whiten_shrinkage
                or self._cached.location != str(getattr(self.store, "location", ""))
            )
            if stale or now - self._checked_at >= CHECK_SECONDS:
                self._checked_at = now
                points = self.store.count()
                if points < self.settings.whiten_min_points:
                    return None
                if stale or _moved(self._cached, points):
                    self._cached = learn_whitening(
                        self.store, model_id, self.settings.whiten_shrinkage
                    )
                    save_whitening(self.path, self._cached)
                    self._mtime = self.path.stat().st_mtime_ns
            return self._cached

    def _reload_if_changed(self) -> None:
        """Pick up a whitening saved by another process (a CLI search beside `serve`)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self._cached, self._mtime = load_whitening(self.path), mtime


def _moved(stored: StoredWhitening | None, points: int) -> bool:
    if stored is None:
        return True
    return abs(points - stored.points) > REFIT_CHANGE * max(stored.points, 1)


def whitened_search(
    store: VectorStore, stored: StoredWhitening, vector: np.ndarray, k: int,
    where: PointFilter | None = None, exact: bool = False,
) -> list[Hit]:
    """Top ``k`` by whitened cosine: query-side search (a full scan if ``exact``), then an
    exact re-score of the top."""
    sides, lengths = stored.whitening.query_sides(vector[None, :])
    # ids and original vectors in one query, int8 scores as they are (the re-score replaces
    # them); payloads only for the k kept (measured at 1M points: docs/benchmarks-scale.md)
    found, vectors = store.candidates(l2_normalise(sides)[0], VECTOR_MOBILENET,
                                      max(k, RERANK_DEPTH), where, exact)
    return _rescored(store, stored, found, vectors, (sides, lengths), None, k)


def whitened_recommend(
    store: VectorStore, stored: StoredWhitening, positives: list[np.ndarray],
    negatives: list[np.ndarray], k: int, where: PointFilter | None = None,
) -> list[Hit]:
    """Qdrant's recommend query (``best_score``) in the whitened space, scored as
    :mod:`service.store.recommend` defines: candidates from the query-side examples, then
    the exact whitened re-score, so a steered score means what a plain one means."""
    liked = stored.whitening.query_sides(np.stack(positives))
    unliked = stored.whitening.query_sides(np.stack(negatives)) if negatives else None
    candidates = store.recommend(list(l2_normalise(liked[0])),
                                 list(l2_normalise(unliked[0])) if unliked is not None else [],
                                 VECTOR_MOBILENET, max(k, RERANK_DEPTH), where)
    found, vectors = store.vectors([hit.id for hit in candidates], VECTOR_MOBILENET)
    payloads = {hit.id: hit.payload for hit in candidates}
    return _rescored(store, stored, found, vectors, liked, unliked, k, payloads)


Sides = tuple[np.ndarray, np.ndarray]  # Whitening.query_sides of some examples


def _rescored(
    store: VectorStore, stored: StoredWhitening, found: list[str], vectors: np.ndarray,
    liked: Sides, unliked: Sides | None, k: int,
    payloads: dict[str, dict[str, Any]] | None = None,
) -> list[Hit]:
    """The candidates ``found`` (their stored ``vectors`` the rows) re-scored by whitened
    cosine: the best over the ``liked`` examples, or, for one closer to an ``unliked`` one,
    ``-(2 + that similarity)`` (ranked last, as in Qdrant). ``payloads``: the candidates'
    own, if the caller has them; else the k kept are read."""
    if not found:  # none, or deleted meanwhile
        return []
    examples = [liked, unliked] if unliked is not None else [liked]
    cosines = stored.whitening.cosines(vectors, np.concatenate([e[0] for e in examples]),
                                       np.concatenate([e[1] for e in examples]))
    best = cosines[:, :len(liked[0])].max(axis=1)
    if unliked is not None:
        worst = cosines[:, len(liked[0]):].max(axis=1)
        best = np.where(best > worst, best, -(2.0 + worst))
    order = sorted(range(len(found)), key=lambda i: (-best[i], found[i]))[:k]
    if payloads is None:
        payloads = {r.id: r.payload for r in store.retrieve([found[i] for i in order])}
    return [Hit(id=found[i], score=float(best[i]), payload=payloads[found[i]])
            for i in order if found[i] in payloads]
