"""Where a content lives on disk: the ``locations`` payload and the files it names.

A point is one distinct content; ``locations`` lists every place it was found (``root``:
the absolute ingested folder, ``path``: relative POSIX path, ``mtime_ns``: the file's
modification time when last seen, for fast re-scans). ``root`` / ``path`` repeat the first
location for readers of schema 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from service.errors import ImageDecodeError
from service.store.schema import (
    LOCATION_MTIME,
    LOCATION_PATH,
    LOCATION_ROOT,
    PAYLOAD_FOLDERS,
    PAYLOAD_LOCATIONS,
    PAYLOAD_PATH,
    PAYLOAD_ROOT,
)

Place = tuple[str, str]  # (root, path)


@dataclass(frozen=True)
class Location:
    """One place a content lives: ``root`` (absolute folder) and ``path`` below it."""

    root: str
    path: str
    mtime_ns: int | None = None

    @property
    def place(self) -> Place:
        return (self.root, self.path)

    def to_payload(self) -> dict[str, Any]:
        entry: dict[str, Any] = {LOCATION_ROOT: self.root, LOCATION_PATH: self.path}
        if self.mtime_ns is not None:
            entry[LOCATION_MTIME] = self.mtime_ns
        return entry

    @property
    def file(self) -> Path:
        return location_file(self.root, self.path)


def locations_of(payload: dict[str, Any]) -> list[Location]:
    """The point's locations; a payload of schema 1 (``root``/``path`` only) gives one."""
    raw = payload.get(PAYLOAD_LOCATIONS)
    if isinstance(raw, list):
        found = []
        for entry in raw:
            if isinstance(entry, dict) and isinstance(entry.get(LOCATION_ROOT), str) and \
                    isinstance(entry.get(LOCATION_PATH), str):
                mtime = entry.get(LOCATION_MTIME)
                found.append(Location(entry[LOCATION_ROOT], entry[LOCATION_PATH],
                                      int(mtime) if isinstance(mtime, int | float) else None))
        return found
    root, path = payload.get(PAYLOAD_ROOT), payload.get(PAYLOAD_PATH)
    if isinstance(root, str) and isinstance(path, str):
        return [Location(root, path)]
    return []


def locations_payload(locations: Sequence[Location]) -> dict[str, Any]:
    """The payload keys that record ``locations`` (sorted, first one also as root/path)
    and the ``folders`` they lie in."""
    ordered = sorted(locations, key=lambda loc: loc.place)
    payload: dict[str, Any] = {
        PAYLOAD_LOCATIONS: [loc.to_payload() for loc in ordered],
        PAYLOAD_FOLDERS: folders_of(ordered),
    }
    if ordered:
        payload[PAYLOAD_ROOT] = ordered[0].root
        payload[PAYLOAD_PATH] = ordered[0].path
    return payload


def folders_of(locations: Iterable[Location]) -> list[str]:
    """Every folder holding one of ``locations``: each file's folder and all folders above it
    (``/`` left out), absolute POSIX paths, sorted. A keyword match on one of them is a
    "somewhere below this folder" filter."""
    folders: set[str] = set()
    for loc in locations:
        folder = PurePosixPath(loc.root, loc.path).parent
        folders.update(str(f) for f in (folder, *folder.parents) if str(f) != "/")
    return sorted(folders)


def location_file(root: object, relative: object) -> Path:
    """The file at ``root`` / ``relative``, refusing anything that could name another file.

    Refuses roots that are not absolute and paths that climb out of their root, so nothing
    built on this (thumbnails, re-embedding) can be steered elsewhere by a payload.
    """
    if not isinstance(root, str) or not isinstance(relative, str) or not relative:
        raise ImageDecodeError("stored point has no usable root/path payload")
    if not Path(root).is_absolute():
        raise ImageDecodeError(f"stored root {root!r} is not an absolute path")
    # Normalised, not resolved: ".." may not climb out, but an ingested symlink still works.
    base = Path(os.path.normpath(root))
    file = Path(os.path.normpath(base / relative))
    if not file.is_relative_to(base):
        raise ImageDecodeError(f"stored path {relative!r} lies outside its root")
    return file


def existing_files(locations: Iterable[Location]) -> list[Path]:
    """The files of ``locations`` that exist now, in order (unsafe entries skipped)."""
    found = []
    for loc in locations:
        try:
            file = loc.file
        except ImageDecodeError:
            continue
        if file.is_file():
            found.append(file)
    return found


def stored_file(payload: dict[str, Any]) -> Path:
    """A file holding the point's content: the first location whose file exists.

    When none exists, the first location's file (so the caller's error names it).
    """
    locations = locations_of(payload)
    files = existing_files(locations)
    if files:
        return files[0]
    if not locations:
        raise ImageDecodeError("stored point has no usable root/path payload")
    return locations[0].file
