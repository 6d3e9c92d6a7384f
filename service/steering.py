"""Steering a search with stored images: "more like these" (like) and "less like those"
(unlike), and a minimum score below which results are hidden.

The liked images join the query image (if any) as positive examples of Qdrant's recommend
query and the unliked ones are its negative examples (see :mod:`service.store.recommend`
for what the scores then mean); the examples themselves are left out of the results.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from service.errors import ConfigError, PointNotFoundError
from service.store.base import Hit, VectorStore
from service.store.schema import PAYLOAD_AE_MODEL, VECTOR_AUTOENCODER


@dataclass(frozen=True)
class Examples:
    """The vectors of the liked (positive) and unliked (negative) images, per space."""

    ids: tuple[str, ...] = ()
    positives: dict[str, list[np.ndarray]] = field(default_factory=dict)
    negatives: dict[str, list[np.ndarray]] = field(default_factory=dict)


NO_EXAMPLES = Examples()


def load_examples(
    store: VectorStore,
    like: Sequence[str],
    unlike: Sequence[str],
    spaces: Sequence[str],
    autoencoder_model: str | None = None,
) -> Examples:
    """The stored vectors of ``like`` and ``unlike`` in each of ``spaces``.

    Raises PointNotFoundError naming the first id that is not stored, and ConfigError for an
    id given as both or an image without a (current) vector in one of the spaces.
    """
    liked, unliked = _unique(like), _unique(unlike)
    both = sorted(set(liked) & set(unliked))
    if both:
        raise ConfigError(f"image {both[0]} is given as both --like and --unlike")
    if not liked and not unliked:
        return NO_EXAMPLES
    vectors = stored_vectors(store, [*liked, *unliked], spaces, autoencoder_model,
                             what={**{i: "--like" for i in liked},
                                   **{i: "--unlike" for i in unliked}})
    return Examples(
        ids=(*liked, *unliked),
        positives={space: [vectors[i][space] for i in liked] for space in spaces},
        negatives={space: [vectors[i][space] for i in unliked] for space in spaces},
    )


def stored_vectors(
    store: VectorStore,
    ids: Sequence[str],
    spaces: Sequence[str],
    autoencoder_model: str | None = None,
    what: dict[str, str] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """``{id: {space: vector}}`` of stored images; ``what`` names each id's option in errors.

    An autoencoder vector counts only if the current model (``autoencoder_model``) made it.
    """
    what = what or {}
    for point_id in ids:
        _check_uuid(point_id, what.get(point_id))
    found = {r.id: r for r in store.retrieve(list(ids), with_vectors=list(spaces))}
    vectors = {}
    for point_id in ids:
        label = f"{what[point_id]}: " if point_id in what else ""
        record = found.get(point_id)
        if record is None:
            raise PointNotFoundError(f"{label}no image with id {point_id} in the collection")
        stale = (VECTOR_AUTOENCODER in spaces and autoencoder_model is not None
                 and record.payload.get(PAYLOAD_AE_MODEL) != autoencoder_model)
        missing = [s for s in spaces if s not in record.vectors
                   or (s == VECTOR_AUTOENCODER and stale)]
        if missing:
            raise ConfigError(f"{label}image {point_id} has no {', '.join(missing)} vector "
                              "of the current model yet")
        vectors[point_id] = {space: record.vectors[space] for space in spaces}
    return vectors


def at_least(hits: list[Hit], min_score: float | None) -> list[Hit]:
    """``hits`` scoring ``min_score`` or more (all of them when it is None)."""
    return hits if min_score is None else [h for h in hits if h.score >= min_score]


def check_min_score(min_score: float | None) -> None:
    if min_score is not None and not math.isfinite(min_score):
        raise ConfigError(f"--min-score must be a number, got {min_score!r}")


def _unique(ids: Sequence[str]) -> list[str]:
    """``ids`` stripped, blanks dropped, each once, in the order given."""
    cleaned = [str(i).strip() for i in ids]
    return list(dict.fromkeys(i for i in cleaned if i))


def _check_uuid(point_id: str, option: str | None) -> None:
    """Point ids are UUIDs; anything else names no stored image."""
    try:
        uuid.UUID(point_id)
    except ValueError:
        prefix = f"{option}: " if option else ""
        raise PointNotFoundError(
            f"{prefix}no image with id {point_id} in the collection"
        ) from None
