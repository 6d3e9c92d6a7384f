""""Not duplicates" decisions: stored in the data dir, so they survive re-scans, threshold
changes and restarts (and are shared by the CLI and the page).

A dismissal records the group as the user saw it: its point ids (contents) and every place
(root, path) of each. On later scans:

* a near pair is dropped when one dismissal holds both contents (content ids come from
  file bytes, so a move or rename keeps the decision; a *new* similar image is still
  grouped with them);
* a content's exact copies are not reported when one dismissal holds all of its current
  places (a new copy elsewhere is reported again).

One JSON file per collection, ``<state>/<collection>.duplicates_dismissed.json``, written
atomically.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.atomic import read_json, write_json_atomic
from service.config import Settings
from service.duplicates.groups import DuplicateGroup


def dismissals_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.duplicates_dismissed.json"


class Dismissals:
    """The stored dismissals of one collection, indexed for the scan."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self._by_id: dict[str, set[int]] = defaultdict(set)
        self._places: list[dict[str, set[tuple[str, str]]]] = []
        for n, record in enumerate(records):
            places: dict[str, set[tuple[str, str]]] = defaultdict(set)
            for pid, root, path in record.get("places", []):
                places[pid].add((root, path))
            for pid in record.get("ids", []):
                self._by_id[pid].add(n)
            self._places.append(places)

    @classmethod
    def load(cls, settings: Settings) -> Dismissals:
        data = read_json(dismissals_path(settings)) or {}
        return cls(list(data.get("dismissed", [])))

    def __len__(self) -> int:
        return len(self.records)

    def pair_dismissed(self, a: str, b: str) -> bool:
        """Whether the user said contents ``a`` and ``b`` are not duplicates."""
        return bool(self._by_id.get(a, set()) & self._by_id.get(b, set()))

    def copies_dismissed(self, point_id: str, places: set[tuple[str, str]]) -> bool:
        """Whether the user dismissed a group holding all these places of one content."""
        return any(places <= self._places[n].get(point_id, set())
                   for n in self._by_id.get(point_id, ()))


def dismiss(settings: Settings, group: DuplicateGroup) -> None:
    """Record ``group`` as not duplicates (appended to the file, written atomically)."""
    records = Dismissals.load(settings).records
    records.append({
        "key": group.key,
        "kind": group.kind,
        "ids": group.ids,
        "places": [[i.id, i.root, i.path] for i in group.items],
        "dismissed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    write_json_atomic(dismissals_path(settings), {"dismissed": records})
