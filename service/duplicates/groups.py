"""Duplicate groups: what one group holds, how near-duplicates are grouped, which copy to keep.

Grouping rule (complete linkage on the similarity graph): candidate pairs are taken from
the most similar down; two groups merge only when *every* image of one is at or above the
threshold against *every* image of the other. So every pair inside a near group is itself a
near-duplicate pair: a chain A~B~C where A and C are not similar never becomes one group
(single linkage, as in a connected-components pass, would merge a whole burst or a slowly
changing series into one giant group). A pair that was not returned by the neighbour
query (beyond the per-image neighbour cap) counts as not similar, which can only split a
group, never merge weakly similar images.

Keeper rule: the largest resolution (width x height), then the largest file, then the
oldest file (modification time), then the first place by (root, path).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from service.locations import Location

EXACT = "exact"
NEAR = "near"

# Chosen with benchmarks/duplicates.py (docs/benchmarks-duplicates.md): the lowest threshold
# at which no two distinct photos were grouped (pair precision 1.000 on photos, so >= 0.98
# with a margin; lower ones gain little recall and start pairing look-alike photos).
# mobilenet 0.80: recall 0.942. The autoencoder value holds for a model trained as there.
DEFAULT_THRESHOLDS = {"mobilenet": 0.80, "autoencoder": 0.75}

Pair = tuple[str, str]


def pair(a: str, b: str) -> Pair:
    """The canonical (ordered) form of an unordered pair of point ids."""
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True)
class PointInfo:
    """What a group needs of a stored point: its places, size and resolution."""

    id: str
    locations: list[Location]
    width: int = 0
    height: int = 0
    file_size: int = 0


@dataclass(frozen=True)
class DuplicateItem:
    """One file of a group. ``score``: similarity of its content to the kept one (1.0 for
    the kept file and its exact copies)."""

    id: str
    root: str
    path: str
    score: float
    keep: bool
    width: int
    height: int
    file_size: int
    mtime_ns: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("mtime_ns")
        data["score"] = round(self.score, 4)
        return data


@dataclass
class DuplicateGroup:
    """Files holding the same content (``exact``) or near-duplicate contents (``near``).

    ``key`` names the group by its members (stable across scans while they stay the same);
    ``number`` is its place in the scan's listing (the ``duplicate_group`` payload value).
    """

    kind: str
    items: list[DuplicateItem]
    number: int = 0
    key: str = field(init=False)

    def __post_init__(self) -> None:
        members = sorted(f"{i.id}|{i.root}|{i.path}" for i in self.items)
        digest = hashlib.sha1("\n".join(members).encode()).hexdigest()[:10]
        self.key = f"{self.kind[0]}{digest}"

    @property
    def ids(self) -> list[str]:
        return sorted({item.id for item in self.items})

    @property
    def keeper(self) -> DuplicateItem:
        return next(item for item in self.items if item.keep)

    @property
    def extras(self) -> list[DuplicateItem]:
        return [item for item in self.items if not item.keep]

    def to_json(self) -> dict[str, Any]:
        return {"group": self.number, "key": self.key, "kind": self.kind,
                "size": len(self.items), "items": [i.to_json() for i in self.items]}


CSV_COLUMNS = ("group", "key", "kind", "id", "root", "path", "score", "keep", "width",
               "height", "file_size")


def csv_rows(groups: Iterable[DuplicateGroup]) -> Iterator[list[Any]]:
    """The header, then one row per file (the CLI's --csv and the page's export)."""
    yield list(CSV_COLUMNS)
    for group in groups:
        for item in group.items:
            row = {"group": group.number, "key": group.key, "kind": group.kind,
                   **item.to_json()}
            yield [row[c] for c in CSV_COLUMNS]


def keeper_order(item: DuplicateItem) -> tuple[Any, ...]:
    """Sort key putting the file to keep first (see the module docstring)."""
    mtime = item.mtime_ns if item.mtime_ns is not None else math.inf
    return (-(item.width * item.height), -item.file_size, mtime, item.root, item.path)


def build_group(
    kind: str,
    points: Iterable[PointInfo],
    similarity: Mapping[Pair, float],
    keep: tuple[str, str] | None = None,
) -> DuplicateGroup:
    """A group of every location of ``points``; the keeper is chosen by :func:`keeper_order`
    unless ``keep`` names its (root, path). Scores are similarities to the kept content."""
    items = [
        DuplicateItem(p.id, loc.root, loc.path, 1.0, False, p.width, p.height, p.file_size,
                      loc.mtime_ns)
        for p in points for loc in p.locations
    ]
    items.sort(key=keeper_order)
    if keep is not None:
        items.sort(key=lambda i: (i.root, i.path) != keep)  # stable: the rest stay in order
    kept = items[0].id
    items = [
        DuplicateItem(i.id, i.root, i.path,
                      1.0 if i.id == kept else float(similarity.get(pair(i.id, kept), 0.0)),
                      n == 0, i.width, i.height, i.file_size, i.mtime_ns)
        for n, i in enumerate(items)
    ]
    return DuplicateGroup(kind, items)


def complete_linkage(edges: Mapping[Pair, float]) -> list[list[str]]:
    """Groups of point ids in which every pair is an edge (see the module docstring).

    ``edges``: canonical pairs at or above the threshold, with their similarity.
    """
    group_of: dict[str, str] = {}  # id -> the id naming its group
    members: dict[str, list[str]] = {}
    for (a, b), _score in sorted(edges.items(), key=lambda e: (-e[1], e[0])):
        ga, gb = group_of.get(a, a), group_of.get(b, b)
        if ga == gb:
            continue
        left, right = members.get(ga, [a]), members.get(gb, [b])
        if all(pair(x, y) in edges for x in left for y in right):
            members[ga] = left + right
            members.pop(gb, None)
            for x in members[ga]:
                group_of[x] = ga
    return [sorted(group) for group in members.values()]
