"""Listing images by their payload alone (no query image), and counting them per value."""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.errors import ConfigError
from service.filters import NO_FILTERS, SearchFilters
from service.search import SearchResult, result_of
from service.store.base import Hit, VectorStore
from service.store.schema import (
    PAYLOAD_CAMERA,
    PAYLOAD_CLUSTER,
    PAYLOAD_LABELS,
    PAYLOAD_TAKEN_AT,
)

YEAR = "year"
# `facets KEY` -> the payload key counted (year: the year of taken_at, counted by scroll,
# since Qdrant's facet API counts keyword and integer values only).
FACET_KEYS = {"camera": PAYLOAD_CAMERA, "labels": PAYLOAD_LABELS, "cluster": PAYLOAD_CLUSTER,
              YEAR: PAYLOAD_TAKEN_AT}
_PAGE = 1024


def browse(
    store: VectorStore,
    filters: SearchFilters = NO_FILTERS,
    cluster: int | None = None,
    limit: int = 50,
) -> list[SearchResult]:
    """Up to ``limit`` images matching the filters (and cluster), in id order, score 0."""
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    where = filters.point_filter(cluster=cluster)
    found: list[SearchResult] = []
    for page in store.scroll(batch_size=min(limit, _PAGE), where=where):
        found.extend(result_of(Hit(r.id, 0.0, r.payload)) for r in page)
        if len(found) >= limit:
            break
    return found[:limit]


def facet_counts(
    store: VectorStore,
    key: str,
    filters: SearchFilters = NO_FILTERS,
    cluster: int | None = None,
    limit: int = 100,
) -> list[tuple[Any, int]]:
    """``(value, images)`` of ``key`` (see :data:`FACET_KEYS`), most frequent first."""
    if key not in FACET_KEYS:
        raise ConfigError(f"KEY must be one of {', '.join(FACET_KEYS)}, got {key!r}")
    where = filters.point_filter(cluster=cluster)
    if key != YEAR:
        return store.facet(FACET_KEYS[key], where, limit)
    years: Counter[int] = Counter()
    for page in store.scroll(batch_size=_PAGE, where=where, with_payload=[PAYLOAD_TAKEN_AT]):
        for record in page:
            taken = record.payload.get(PAYLOAD_TAKEN_AT)
            if isinstance(taken, str) and taken[:4].isdigit():
                years[int(taken[:4])] += 1
    return sorted(years.items(), key=lambda item: (-item[1], item[0]))[:limit]
