"""What an ingest run did, for the end-of-run summary and for JSON output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestReport:
    root: str
    found: int = 0
    added: int = 0
    already_stored: int = 0
    duplicates: int = 0  # identical content under another path in this run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        processed = self.added + self.already_stored + self.duplicates
        return processed / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestReport:
        """The report back from :meth:`to_json` (an ingest job's result)."""
        return cls(
            root=data["root"], found=data["found"], added=data["added"],
            already_stored=data["already_stored"], duplicates=data["duplicates"],
            failed=[(item["path"], item["reason"]) for item in data["failed"]],
            seconds=float(data["seconds"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "found": self.found,
            "added": self.added,
            "already_stored": self.already_stored,
            "duplicates": self.duplicates,
            "failed": [{"path": path, "reason": reason} for path, reason in self.failed],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }
