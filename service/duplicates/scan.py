"""One duplicates scan: exact groups, near groups (or a reference comparison), labels.

A full scan also labels the collection: each grouped point gets the integer payload
``duplicate_group`` (indexed) = its group's number in this scan, and labels of an earlier
scan that no longer apply are removed, so users can filter on it in Qdrant directly (a scan
killed while labelling leaves a mix of old and new numbers; the next scan replaces them
all, and nothing else reads them). The
groups of the last scan are kept in ``<state>/<collection>.duplicates.json`` so a group can
be dismissed by its number or key afterwards.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from service.atomic import read_json, write_json_atomic
from service.cluster_labels import space_filter
from service.config import Settings
from service.duplicates.dismissals import Dismissals
from service.duplicates.groups import (
    DEFAULT_THRESHOLDS,
    EXACT,
    NEAR,
    DuplicateGroup,
    DuplicateItem,
    Pair,
    PointInfo,
    build_group,
    complete_linkage,
    keeper_order,
    pair,
)
from service.duplicates.neighbours import neighbour_lists, point_infos
from service.errors import ConfigError, ModelNotTrainedError
from service.indexing import build_index, index_if_due
from service.locations import Location
from service.store.base import PointFilter, VectorStore
from service.store.schema import PAYLOAD_DUPLICATE_GROUP, VECTOR_AUTOENCODER

_ID_CHUNK = 1024
# From this many points the scan builds the vector index (HNSW) first: an exact scan costs
# one pass over the collection per image (hours at 100k), an indexed query about a millisecond.
INDEX_FROM = 10_000


@dataclass
class DuplicateScan:
    """The groups one scan found, and how it was run."""

    groups: list[DuplicateGroup]
    space: str
    threshold: float
    against: tuple[str, str] | None
    points: int
    seconds: float

    def record(self) -> dict[str, Any]:
        return {"space": self.space, "threshold": self.threshold,
                "against": list(self.against) if self.against else None,
                "points": self.points, "seconds": round(self.seconds, 3),
                "groups": [g.to_json() for g in self.groups]}


def last_scan_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.duplicates.json"


def find_duplicates(
    settings: Settings,
    store: VectorStore,
    *,
    space: str = "mobilenet",
    threshold: float | None = None,
    model_id: str | None = None,
    against: tuple[Path, Path] | None = None,
    write_labels: bool = True,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> DuplicateScan:
    """Find duplicate groups in ``space`` at ``threshold`` (default: the measured one).

    ``model_id``: the autoencoder version to compare (default: the current one).

    ``against=(A, B)``: only images under ingested folder B that duplicate something under
    A; each is grouped with its most similar image under A, which is the one to keep. A full
    scan (no ``against``) writes the ``duplicate_group`` labels unless ``write_labels`` is
    False. Groups are numbered from 1, largest first. Dismissed groups are left out.
    """
    started = time.perf_counter()
    base = space_filter(space, model_id or _current_model(settings, space))
    threshold = DEFAULT_THRESHOLDS[space] if threshold is None else float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"--threshold must be in (0, 1], got {threshold}")
    dismissals = Dismissals.load(settings)
    if store.count(base) >= INDEX_FROM:
        if notify:
            notify("building the vector index if needed (kept for later scans and searches)")
        build_index(store, keep_serving=True)  # the page keeps answering meanwhile
    roots = None
    if against is not None:
        roots = (_known_root(store, against[0]), _known_root(store, against[1]))
        if roots[0] == roots[1]:
            raise ConfigError("--against needs two different folders")
        source = replace(base, location_root=roots[1])
        if on_total:
            on_total(store.count(source))
        groups = _reference_groups(store, space, threshold, base, roots, dismissals,
                                   on_progress)
    else:
        if on_total:
            on_total(store.count(base))
        groups = _library_groups(store, space, threshold, base, dismissals, on_progress)
    groups.sort(key=lambda g: (-len(g.items), g.keeper.root, g.keeper.path))
    for number, group in enumerate(groups, start=1):
        group.number = number
    points = sum(len(g.ids) for g in groups)
    scan = DuplicateScan(groups, space, threshold, roots, points, time.perf_counter() - started)
    if against is None and write_labels:
        write_group_labels(store, groups)
        index_if_due(settings, store, keep_serving=True, notify=notify)
    write_json_atomic(last_scan_path(settings), scan.record())
    return scan


def _current_model(settings: Settings, space: str) -> str | None:
    """The autoencoder version whose vectors are comparable (None for mobilenet)."""
    if space != VECTOR_AUTOENCODER:
        return None
    from service.autoencoder.files import CURRENT, read_pointer
    from service.embedders.autoencoder import NOT_TRAINED_MESSAGE

    version = read_pointer(settings, CURRENT)
    if version is None:
        raise ModelNotTrainedError(NOT_TRAINED_MESSAGE)
    return version


def _known_root(store: VectorStore, folder: Path) -> str:
    root = str(Path(folder).expanduser().resolve())
    if store.count(PointFilter(location_root=root)) == 0:
        raise ConfigError(f"no images stored under {root}: --against takes folders given to "
                          "`simimg-admin ingest` (matched exactly)")
    return root


def _library_groups(
    store: VectorStore, space: str, threshold: float, base: PointFilter,
    dismissals: Dismissals, on_progress: Callable[[int], None] | None,
) -> list[DuplicateGroup]:
    edges: dict[Pair, float] = {}
    copies: dict[str, PointInfo] = {}  # contents with more than one place
    for found in neighbour_lists(store, space, threshold, base, base, on_page=on_progress):
        point = found.point
        if len(point.locations) > 1:
            copies[point.id] = point
        for hit in found.hits:
            if not dismissals.pair_dismissed(point.id, hit.id):
                key = pair(point.id, hit.id)
                edges[key] = max(edges.get(key, -1.0), hit.score)
    near_sets = complete_linkage(edges)
    infos = point_infos(store, sorted({pid for group in near_sets for pid in group}))
    groups = [build_group(NEAR, [infos[pid] for pid in ids if pid in infos], edges)
              for ids in near_sets]
    groups = [g for g in groups if len(g.ids) > 1]
    grouped = {pid for g in groups for pid in g.ids}
    for pid, point in copies.items():
        if pid not in grouped and not dismissals.copies_dismissed(
                pid, {loc.place for loc in point.locations}):
            groups.append(build_group(EXACT, [point], {}))
    return groups


def _reference_groups(
    store: VectorStore, space: str, threshold: float, base: PointFilter,
    roots: tuple[str, str], dismissals: Dismissals,
    on_progress: Callable[[int], None] | None,
) -> list[DuplicateGroup]:
    """Each image under B joins its most similar image under A (the seed, kept)."""
    archive, new = roots
    source, target = replace(base, location_root=new), replace(base, location_root=archive)
    members: dict[str, list[tuple[PointInfo, float]]] = defaultdict(list)
    for found in neighbour_lists(store, space, threshold, source, target,
                                 on_page=on_progress):
        point = found.point
        under_new = [loc for loc in point.locations if loc.root == new]
        if any(loc.root == archive for loc in point.locations):
            seed, score = point.id, 1.0
        else:
            hits = [h for h in found.hits if not dismissals.pair_dismissed(point.id, h.id)]
            if not hits:
                continue
            seed, score = hits[0].id, hits[0].score
        members[seed].append((replace(point, locations=under_new), score))
    seeds = point_infos(store, sorted(members))
    groups = []
    for seed_id, joined in members.items():
        seed = seeds.get(seed_id)
        if seed is None:
            continue
        kept = min((loc for loc in seed.locations if loc.root == archive),
                   key=lambda loc: keeper_order(_item(seed, loc)))
        points = _merge_seed(replace(seed, locations=[kept]), [p for p, _ in joined])
        similarity = {pair(p.id, seed_id): score for p, score in joined}
        kind = EXACT if all(p.id == seed_id for p, _ in joined) else NEAR
        group = build_group(kind, points, similarity, keep=kept.place)
        if kind == EXACT and dismissals.copies_dismissed(
                seed_id, {(i.root, i.path) for i in group.items}):
            continue
        groups.append(group)
    return groups


def _merge_seed(seed: PointInfo, joined: list[PointInfo]) -> list[PointInfo]:
    """The seed (its kept place) plus the joined points; the seed's own copies under B
    become places of the seed."""
    extra: list[Location] = []
    others = []
    for point in joined:
        if point.id == seed.id:
            extra.extend(point.locations)
        else:
            others.append(point)
    return [replace(seed, locations=seed.locations + extra), *others]


def _item(point: PointInfo, loc: Location) -> DuplicateItem:
    return DuplicateItem(point.id, loc.root, loc.path, 1.0, False, point.width, point.height,
                         point.file_size, loc.mtime_ns)


def write_group_labels(store: VectorStore, groups: list[DuplicateGroup]) -> None:
    """Set ``duplicate_group`` on every grouped point; remove labels no longer true.

    Points whose group number stays are not written (a write moves a point out of the
    embedded engine's vector index until the next build, see ``service.store.edge``)."""
    current: dict[str, Any] = {}
    for page in store.scroll(_ID_CHUNK, where=PointFilter(in_duplicate_group=True),
                             with_payload=[PAYLOAD_DUPLICATE_GROUP]):
        current.update((record.id, record.payload.get(PAYLOAD_DUPLICATE_GROUP))
                       for record in page)
    grouped: set[str] = set()
    for group in groups:
        changed = [pid for pid in group.ids if current.get(pid) != group.number]
        if changed:
            store.set_payload({PAYLOAD_DUPLICATE_GROUP: group.number}, changed)
        grouped.update(group.ids)
    stale = sorted(set(current) - grouped)
    for start in range(0, len(stale), _ID_CHUNK):
        store.delete_payload_key(PAYLOAD_DUPLICATE_GROUP, stale[start : start + _ID_CHUNK])
    store.flush()


def last_scan_group(settings: Settings, which: str) -> DuplicateGroup:
    """A group of the last scan by its key or its number (for dismissing it)."""
    record = read_json(last_scan_path(settings))
    if not record:
        raise ConfigError("no duplicates scan yet: run `simimg-admin duplicates` first")
    for data in record.get("groups", []):
        if which in (data.get("key"), str(data.get("group"))):
            items = [DuplicateItem(**item) for item in data["items"]]
            group = DuplicateGroup(data["kind"], items, number=int(data["group"]))
            return group
    raise ConfigError(f"no group {which!r} in the last duplicates scan "
                      f"({len(record.get('groups', []))} groups)")
