"""What a sync learns about locations, and how it is written back in one pass at the end.

:class:`LocationIndex` is what the collection knows about the roots being synced, read with
one scroll per root: every place (root, path) with its point, file size and mtime, so an
unchanged file is recognised from ``stat`` alone.

:class:`LocationLedger` collects, while the files are walked and hashed, the places each
point gains and loses; :meth:`LocationLedger.apply` then rewrites the ``locations`` of each
touched point once and deletes the points left with none. Gains are written before points
are deleted, so a content that moved from one synced root to another keeps its point and its
vectors. Everything is derived from the disk and the store, so a sync killed at any moment
and run again reaches the same state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from service.locations import Location, Place, locations_of, locations_payload
from service.store.base import PointFilter, VectorStore
from service.store.schema import PAYLOAD_FILE_SIZE, PAYLOAD_LOCATIONS, PAYLOAD_MODIFIED_AT

_PAGE = 1024


@dataclass(frozen=True)
class KnownPlace:
    """A stored location: which point it holds, and the file facts when it was last seen."""

    point_id: str
    file_size: int | None
    mtime_ns: int | None
    # False for points stored before photo metadata was read (schema < 4): their files are
    # read once more (header only, never embedded) to add it.
    has_metadata: bool = True

    def unchanged(self, size: int, mtime_ns: int) -> bool:
        return self.mtime_ns == mtime_ns and self.file_size == size and self.has_metadata


class LocationIndex:
    """Every stored location under some roots: ``place -> [KnownPlace, ...]``.

    A place is normally claimed by one point. After a sync killed between creating a new
    content's point and taking the place from the old one, two points claim it; such a
    place is never taken as unchanged, and the next sync gives it to the one it holds.
    """

    def __init__(self) -> None:
        self._places: dict[Place, list[KnownPlace]] = defaultdict(list)
        self._by_root: dict[str, set[Place]] = defaultdict(set)

    @classmethod
    def load(cls, store: VectorStore, roots: Iterable[str]) -> LocationIndex:
        index = cls()
        for root in roots:
            index._by_root.setdefault(root, set())
            pages = store.scroll(
                batch_size=_PAGE,
                where=PointFilter(location_root=root),
                with_payload=[PAYLOAD_LOCATIONS, PAYLOAD_FILE_SIZE, PAYLOAD_MODIFIED_AT],
            )
            for page in pages:
                for record in page:
                    size = record.payload.get(PAYLOAD_FILE_SIZE)
                    has_metadata = PAYLOAD_MODIFIED_AT in record.payload
                    for loc in locations_of(record.payload):
                        if loc.root == root:
                            index.add(loc, record.id, int(size) if size is not None else None,
                                      has_metadata)
        return index

    def add(
        self, loc: Location, point_id: str, file_size: int | None, has_metadata: bool = True
    ) -> None:
        self._places[loc.place].append(
            KnownPlace(point_id, file_size, loc.mtime_ns, has_metadata)
        )
        self._by_root[loc.root].add(loc.place)

    def claims(self, place: Place) -> list[KnownPlace]:
        """The points that list ``place`` among their locations."""
        return self._places.get(place, [])

    def unchanged(self, place: Place, size: int, mtime_ns: int) -> bool:
        """The place is claimed by one point and its file still has the recorded facts."""
        claims = self.claims(place)
        return len(claims) == 1 and claims[0].unchanged(size, mtime_ns)

    def places_under(self, root: str) -> Iterator[Place]:
        yield from sorted(self._by_root.get(root, ()))


@dataclass
class LedgerCounts:
    """What :meth:`LocationLedger.apply` changed, in the summary's terms (files, not points)."""

    moved: int = 0  # a content's place changed (move or rename): no embedding
    copies: int = 0  # a content found at one more place than before
    removed: int = 0  # a place whose file is gone
    refreshed: int = 0  # same content, newer mtime: only the recorded mtime changed
    points_deleted: int = 0  # contents with no place left


@dataclass
class LocationLedger:
    """Places gained and lost per point during one sync (see the module docstring)."""

    index: LocationIndex
    gained: dict[str, dict[Place, Location]] = field(default_factory=lambda: defaultdict(dict))
    lost: dict[str, set[Place]] = field(default_factory=lambda: defaultdict(set))
    refreshed: dict[str, dict[Place, Location]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    edited: int = 0  # places whose file now holds another content
    _edited_places: set[Place] = field(default_factory=set)

    def found(self, loc: Location, point_id: str, *, new_point: bool) -> None:
        """The file at ``loc`` holds the content ``point_id`` (hashed in this sync).

        ``new_point``: the point is being created with ``loc`` as its first location.
        """
        claims = self.index.claims(loc.place)
        others = [c.point_id for c in claims if c.point_id != point_id]
        for other in others:  # edited in place: the old content loses this place
            self.lost[other].add(loc.place)
        if others:
            self.edited += 1
            self._edited_places.add(loc.place)
        if new_point:
            return
        mine = [c for c in claims if c.point_id == point_id]
        if mine:
            if mine[0].mtime_ns != loc.mtime_ns:
                self.refreshed[point_id][loc.place] = loc
            return
        self.gained[point_id][loc.place] = loc

    def missing(self, place: Place) -> None:
        """The file of a known place is gone."""
        for claim in self.index.claims(place):
            self.lost[claim.point_id].add(place)

    def apply(self, store: VectorStore) -> LedgerCounts:
        """Write every touched point's new ``locations``; delete points left with none."""
        counts = LedgerCounts()
        touched = sorted(set(self.gained) | set(self.lost) | set(self.refreshed))
        emptied: list[str] = []
        for start in range(0, len(touched), _PAGE):
            for record in store.retrieve(touched[start : start + _PAGE]):
                remaining = self._update_point(store, record.id, record.payload, counts)
                if not remaining:
                    emptied.append(record.id)
        store.delete(emptied)  # after every gain is written: moves keep their point
        counts.points_deleted = len(emptied)
        store.flush()
        return counts

    def _update_point(
        self, store: VectorStore, point_id: str, payload: dict, counts: LedgerCounts
    ) -> int:
        places = {loc.place: loc for loc in locations_of(payload)}
        lost = [p for p in self.lost.get(point_id, ()) if p in places]
        for place in lost:
            del places[place]
        gained = [p for p in self.gained.get(point_id, {}) if p not in places]
        places.update(self.gained.get(point_id, {}))
        refreshed = self.refreshed.get(point_id, {})
        places.update(refreshed)
        counts.refreshed += len(refreshed)
        gains = sum(p not in self._edited_places for p in gained)
        losses = sum(p not in self._edited_places for p in lost)
        moves = min(gains, losses)
        counts.moved += moves
        counts.copies += gains - moves
        counts.removed += losses - moves
        if places and (lost or gained or refreshed):
            store.set_payload(locations_payload(list(places.values())), [point_id])
        return len(places)
