"""Points written since the embedded store's last index build.

qdrant-edge applies any write to a point of an indexed (immutable) segment by moving the
point, vectors too, to the plain appendable segment: a payload write to a key without a
payload index included (measured; Qdrant PR #7952, "Always Copy-on-Write when updating
payload in immutable segments"). Moved points are scanned exactly until the next build, yet
the engine's indexed count still includes them. This count, kept beside the shard so a
restart keeps it, lets the store report them (an estimate that errs high: a write to a new
point that was never indexed counts too).
"""

from __future__ import annotations

from pathlib import Path

from service.atomic import read_json, write_json_atomic

FILE_NAME = "simimg-index.json"


class MovedPoints:
    """The count in ``shard_dir / FILE_NAME``; the caller serialises access."""

    def __init__(self, shard_dir: Path) -> None:
        self.path = shard_dir / FILE_NAME
        self._count: int | None = None  # loaded on first use
        self._saved: int | None = None

    def count(self) -> int:
        if self._count is None:
            saved = read_json(self.path) or {}
            self._count = self._saved = int(saved.get("points", 0))
        return self._count

    def add(self, points: int) -> None:
        self._count = self.count() + points

    def reset(self) -> None:
        """After a build: every point is in the index again."""
        self._count = 0
        self.save()

    def save(self) -> None:
        if self._count is not None and self._count != self._saved:
            write_json_atomic(self.path, {"points": self._count})
            self._saved = self._count
