"""What an ingest run did, for the end-of-run summary and for JSON output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_COUNTS = (
    "found", "added", "already_stored", "duplicates", "unchanged", "moved", "copies",
    "removed", "edited", "points_deleted",
)


@dataclass
class IngestReport:
    """Counts of one run. ``found`` files = ``added`` + ``already_stored`` + ``duplicates``
    + failed; the sync counts (``unchanged``, ``moved``, ...) say what changed on disk."""

    root: str
    found: int = 0
    added: int = 0  # new contents, embedded
    already_stored: int = 0  # files whose content was already stored (no embedding)
    duplicates: int = 0  # copies of a content that is new in this run
    unchanged: int = 0  # files at a known place with the known content
    moved: int = 0  # moves and renames: a place lost and one gained by the same content
    copies: int = 0  # places gained by a content that kept its others
    removed: int = 0  # places whose file is gone
    edited: int = 0  # places whose file now holds another content
    points_deleted: int = 0  # contents with no place left, deleted from the collection
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        processed = self.added + self.already_stored + self.duplicates
        return processed / self.seconds if self.seconds > 0 else 0.0

    def merge(self, other: IngestReport) -> None:
        """Add ``other``'s counts to this report (the root and the time stay this one's)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.extend(other.failed)

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        return (
            f"found {self.found}: added {self.added}, moved/renamed {self.moved}, "
            f"copies found {self.copies}, removed {self.removed}, "
            f"edited {self.edited}, unchanged {self.unchanged}, failed {len(self.failed)} "
            f"in {self.seconds:.1f}s ({self.images_per_second:.1f} images/s)"
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestReport:
        """The report back from :meth:`to_json` (an ingest job's result)."""
        counts = {name: int(data.get(name, 0)) for name in _COUNTS}
        return cls(
            root=data["root"], **counts,
            failed=[(item["path"], item["reason"]) for item in data["failed"]],
            seconds=float(data["seconds"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            **{name: getattr(self, name) for name in _COUNTS},
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }
