"""What a user narrows a search or a listing by: capture date, camera, label, folder.

One parser for every caller (CLI flags, REST parameters, the page's controls), so the same
text means the same filter everywhere; :meth:`SearchFilters.point_filter` turns it into the
store's :class:`~service.store.records.PointFilter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.errors import ConfigError
from service.store.records import PointFilter

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


@dataclass(frozen=True)
class SearchFilters:
    """Normalised filters (all optional, all must hold).

    ``after`` / ``before``: RFC 3339 UTC bounds on ``taken_at`` (from inclusive, before
    exclusive); ``camera``: words contained in ``camera``; ``label``: one lowercase word of
    ``labels``; ``folder``: an absolute folder the image lies somewhere below.
    """

    after: str | None = None
    before: str | None = None
    camera: str | None = None
    label: str | None = None
    folder: str | None = None

    @classmethod
    def parse(
        cls,
        after: str | None = None,
        before: str | None = None,
        camera: str | None = None,
        label: str | None = None,
        folder: str | Path | None = None,
    ) -> SearchFilters:
        """Validate user text; raises ConfigError naming the bad argument. Blank = unset."""
        filters = cls(
            after=parse_date(after, "--after"),
            before=parse_date(before, "--before"),
            camera=_blank_to_none(camera),
            label=(_blank_to_none(label) or "").lower() or None,
            folder=_folder(folder),
        )
        if filters.after and filters.before and filters.after >= filters.before:
            raise ConfigError(f"--after {after} is not before --before {before}")
        return filters

    @property
    def active(self) -> bool:
        return any(vars(self).values())

    def as_params(self) -> dict[str, str]:
        """The set filters as request parameters (the REST API's names), for a client."""
        return {name: value for name, value in vars(self).items() if value is not None}

    def point_filter(self, **extra: Any) -> PointFilter:
        """These filters plus ``extra`` PointFilter fields (e.g. ``cluster``)."""
        return replace(
            PointFilter(**extra), taken_after=self.after, taken_before=self.before,
            camera=self.camera, label=self.label, folder=self.folder,
        )


NO_FILTERS = SearchFilters()


def parse_date(text: str | None, argument: str) -> str | None:
    """``2024``, ``2024-06``, ``2024-06-01`` (the start of that period) or a full ISO 8601
    date-time, as an RFC 3339 UTC timestamp (a time without offset is taken as UTC, as
    ``taken_at`` stores camera times without one)."""
    text = _blank_to_none(text)
    if text is None:
        return None
    when: datetime | None = None
    if match := _PARTIAL_DATE.match(text):
        year, month, day = (int(g) if g else 1 for g in match.groups())
        try:
            when = datetime(year, month, day, tzinfo=UTC)
        except ValueError:
            when = None
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if when is None:
        raise ConfigError(
            f"{argument}: expected a date such as 2024, 2024-06 or 2024-06-01, got {text!r}"
        )
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _blank_to_none(text: str | None) -> str | None:
    if text is None:
        return None
    text = str(text).strip()
    return text or None


def _folder(folder: str | Path | None) -> str | None:
    """The folder as stored roots are (absolute, symlinks resolved, no trailing slash)."""
    text = _blank_to_none(str(folder) if folder is not None else None)
    if text is None:
        return None
    return str(Path(text).expanduser().resolve())
