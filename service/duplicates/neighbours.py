"""Similar pairs from batched Qdrant nearest-neighbour queries: never an n x n matrix.

The collection is read in pages of vectors; each page becomes one batched query
(``search_batch``: qdrant-edge's ``query_batch``, a server's ``query_batch_points``) that
returns only neighbours at or above the threshold. Memory holds one page of vectors and the
pairs found, so it grows with the number of duplicates, not with the collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from service.duplicates.groups import PointInfo
from service.locations import locations_of
from service.store.base import Hit, PointFilter, PointRecord, VectorStore
from service.store.schema import (
    PAYLOAD_FILE_SIZE,
    PAYLOAD_HEIGHT,
    PAYLOAD_LOCATIONS,
    PAYLOAD_PATH,
    PAYLOAD_ROOT,
    PAYLOAD_WIDTH,
)

PAGE = 256
FIRST_K = 16  # neighbours asked for first; a point with that many is asked again, more
MAX_K = 256  # neighbours per image at most (a larger burst is split into several groups)
INFO_KEYS = [PAYLOAD_LOCATIONS, PAYLOAD_ROOT, PAYLOAD_PATH, PAYLOAD_WIDTH, PAYLOAD_HEIGHT,
             PAYLOAD_FILE_SIZE]


@dataclass(frozen=True)
class Neighbours:
    """A stored point and its neighbours at or above the threshold (itself left out)."""

    point: PointInfo
    hits: list[Hit]


def point_info(record: PointRecord) -> PointInfo:
    payload = record.payload
    return PointInfo(
        record.id, locations_of(payload), int(payload.get(PAYLOAD_WIDTH) or 0),
        int(payload.get(PAYLOAD_HEIGHT) or 0), int(payload.get(PAYLOAD_FILE_SIZE) or 0),
    )


def neighbour_lists(
    store: VectorStore,
    space: str,
    threshold: float,
    source: PointFilter,
    target: PointFilter,
    *,
    page: int = PAGE,
    on_page: Callable[[int], None] | None = None,
) -> Iterator[Neighbours]:
    """For every point matching ``source``: the points matching ``target`` whose similarity
    in ``space`` is at least ``threshold``, best first (up to :data:`MAX_K`)."""
    for records in store.scroll(page, with_vectors=[space], where=source, with_payload=INFO_KEYS):
        records = [r for r in records if space in r.vectors]
        vectors = [r.vectors[space] for r in records]
        results = store.search_batch(vectors, space, FIRST_K + 1, target, threshold)
        for record, hits in zip(records, results, strict=True):
            k = FIRST_K + 1
            while len(hits) >= k and k < MAX_K + 1:  # full: there may be more
                k = min(4 * k, MAX_K + 1)
                hits = store.search_batch([record.vectors[space]], space, k, target,
                                          threshold)[0]
            yield Neighbours(point_info(record), [h for h in hits if h.id != record.id])
        if on_page:
            on_page(len(records))


def point_infos(store: VectorStore, ids: list[str], chunk: int = 1024) -> dict[str, PointInfo]:
    """Places, size and resolution of the points ``ids`` (missing ids left out)."""
    found: dict[str, PointInfo] = {}
    for start in range(0, len(ids), chunk):
        for record in store.retrieve(ids[start : start + chunk]):
            found[record.id] = point_info(record)
    return found
