"""What a recommend ("more like these, less like those") query's score means in simimg.

Both backends run Qdrant's recommend query with the ``best_score`` strategy. For a candidate
whose best cosine similarity to the positive examples is ``p`` and to the negative ones
``n``, Qdrant scores ``sigmoid(p)`` when ``p > n`` and ``-sigmoid(n)`` otherwise, with
``sigmoid(x) = (x / (1 + |x|) + 1) / 2`` (qdrant's ``scaled_fast_sigmoid``; the same in
qdrant-edge 0.9 and qdrant-client's local mode, checked by the store contract tests).

simimg turns that back into a similarity, so a score means the same with or without
steering (and ``--min-score`` one thing):

* closer to a positive example: the cosine similarity ``p`` to the closest one, in [-1, 1];
* closer to a negative example than to every positive one: ``-(2 + n)``, below -1, so it
  still ranks after every other result (as in Qdrant) and any ``min_score >= -1`` hides it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from service.store.records import Hit, PointFilter


class Recommends(Protocol):
    """The recommend part of :class:`~service.store.base.VectorStore`."""

    def recommend(
        self,
        positives: Sequence[np.ndarray],
        negatives: Sequence[np.ndarray],
        space: str,
        k: int,
        where: PointFilter | None = None,
    ) -> list[Hit]:
        """Top-k of Qdrant's recommend query (``best_score``): more like ``positives``, less
        like ``negatives``; scores as this module's doc defines them."""


class RecommendQueries(ABC):
    """``VectorStore.recommend`` for :class:`~service.store.base.StoreBase`: the examples as
    float lists to the backend's ``_recommend``, Qdrant's scores back to similarities."""

    @abstractmethod
    def _recommend(
        self,
        positives: list[list[float]],
        negatives: list[list[float]],
        space: str,
        k: int,
        native_filter: Any,
    ) -> list[Hit]:
        """The backend's recommend query, ``best_score`` strategy, with Qdrant's own scores."""

    @abstractmethod
    def native_filter(self, where: PointFilter | None) -> Any: ...

    def recommend(
        self,
        positives: Sequence[np.ndarray],
        negatives: Sequence[np.ndarray],
        space: str,
        k: int,
        where: PointFilter | None = None,
    ) -> list[Hit]:
        """Top-k: more like ``positives``, less like ``negatives`` (at least one positive)."""
        if not positives:
            raise ValueError("a recommend query needs at least one positive example")
        hits = self._recommend(
            [np.asarray(v, dtype=np.float32).tolist() for v in positives],
            [np.asarray(v, dtype=np.float32).tolist() for v in negatives],
            space, k, self.native_filter(where),
        )
        return [Hit(h.id, similarity_from_best_score(h.score), h.payload) for h in hits]


def similarity_from_best_score(score: float) -> float:
    """simimg's score for a Qdrant ``best_score`` recommend score (see the module doc)."""
    closer_to_positive = score > 0
    squashed = min(max(2.0 * abs(score) - 1.0, -0.999999), 0.999999)  # x / (1 + |x|)
    similarity = squashed / (1.0 - abs(squashed))
    return similarity if closer_to_positive else -(2.0 + similarity)
