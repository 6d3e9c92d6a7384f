"""Make the collection match the disk under some roots: the reconciling ingest.

One sync of roots R1..Rn:

1. read what the collection knows under each root (:class:`~ingest.ledger.LocationIndex`,
   one scroll per root);
2. walk each root; a file whose size and mtime match its stored location is unchanged and
   is not read at all; every other file is read and hashed (and embedded only if its
   content is new) by :class:`~ingest.runner.FolderIngester`;
3. each known place whose file is gone is lost (unless ``keep_missing``);
4. the ledger rewrites the ``locations`` of the touched points and deletes points left with
   no place.

A move or rename inside the synced roots therefore costs one read and hash, never an
embedding; a copy adds a location; an edit in place moves the place to the new content.
Only places under the synced roots are touched, and a root that yields no files while the
collection knows images there is refused (a detached drive must not look like "everything
deleted") unless ``allow_empty``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.ledger import LocationIndex, LocationLedger
from ingest.report import IngestReport
from ingest.runner import FolderIngester, ProgressCallback
from service.errors import ConfigError
from service.store.base import VectorStore
from service.walker import Shard, iter_image_files, relative_posix


class EmptyRootError(ConfigError):
    """A root with no image files where the collection knows images (a detached drive?)."""


@dataclass(frozen=True)
class _Walked:
    root: Path
    to_read: list[Path]  # new or changed files
    unchanged: int
    seen: set[str]  # relative paths present on disk (read or not)
    unlistable: list[tuple[str, str]]  # (relative folder, reason)


@dataclass(frozen=True)
class SyncPlan:
    """What a sync will read: the known places and each root's walk (nothing written yet)."""

    index: LocationIndex
    walks: list[_Walked]
    shard: Shard | None
    keep_missing: bool

    @property
    def files(self) -> int:
        return sum(len(w.to_read) + w.unchanged for w in self.walks)


def plan_sync(
    store: VectorStore,
    roots: Sequence[Path],
    *,
    shard: Shard | None = None,
    keep_missing: bool = False,
    allow_empty: bool = False,
) -> SyncPlan:
    """Read what the collection knows under ``roots`` and walk them; refuse an emptied root.

    Raises :class:`EmptyRootError` before anything is changed.
    """
    resolved = list(dict.fromkeys(root.resolve() for root in roots))
    index = LocationIndex.load(store, [str(root) for root in resolved])
    walks = [_walk(root, index, shard) for root in resolved]
    if not (allow_empty or keep_missing):
        for walk in walks:
            _refuse_empty(walk, index, shard)
    return SyncPlan(index, walks, shard, keep_missing)


def run_sync(
    ingester: FolderIngester,
    plan: SyncPlan,
    *,
    on_total: Callable[[int], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Carry out ``plan``: read and embed what changed, then write the locations."""
    started = time.perf_counter()
    if on_total:
        on_total(plan.files)
    if on_progress:
        on_progress(sum(w.unchanged for w in plan.walks))
    ledger = LocationLedger(plan.index)
    report = IngestReport(root=", ".join(str(w.root) for w in plan.walks))
    for walk in plan.walks:
        part = ingester.ingest(walk.root, walk.to_read, on_progress, ledger=ledger)
        report.merge(part)
        report.found += walk.unchanged
        report.already_stored += walk.unchanged
        report.unchanged += walk.unchanged
        report.failed.extend(walk.unlistable)
        if not plan.keep_missing:
            for place in _missing(walk, plan.index, plan.shard):
                ledger.missing(place)
    counts = ledger.apply(ingester.store)
    report.moved, report.copies, report.removed = counts.moved, counts.copies, counts.removed
    report.edited = ledger.edited
    report.unchanged += counts.refreshed
    report.points_deleted = counts.points_deleted
    report.seconds = time.perf_counter() - started
    return report


def sync_roots(
    ingester: FolderIngester,
    roots: Sequence[Path],
    *,
    shard: Shard | None = None,
    keep_missing: bool = False,
    allow_empty: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestReport:
    """Reconcile the collection with ``roots`` (see the module docstring); one report."""
    started = time.perf_counter()
    plan = plan_sync(
        ingester.store, roots, shard=shard, keep_missing=keep_missing, allow_empty=allow_empty
    )
    report = run_sync(ingester, plan, on_total=on_total, on_progress=on_progress)
    report.seconds = time.perf_counter() - started
    return report


def _walk(root: Path, index: LocationIndex, shard: Shard | None) -> _Walked:
    """List ``root``; split its files into unchanged (by stat) and to be read."""
    unlistable: list[tuple[str, str]] = []

    def folder_error(folder: Path, error: OSError) -> None:
        name = relative_posix(folder, root) if folder != root else "."
        unlistable.append((name, f"cannot list folder ({error.strerror or error})"))

    key = str(root)
    to_read: list[Path] = []
    seen: set[str] = set()
    unchanged = 0
    for path in iter_image_files(root, shard, on_error=folder_error):
        relative = relative_posix(path, root)
        seen.add(relative)
        if index.claims((key, relative)):
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is not None and index.unchanged((key, relative), st.st_size, st.st_mtime_ns):
                unchanged += 1
                continue
        to_read.append(path)
    return _Walked(root, to_read, unchanged, seen, unlistable)


def _missing(walk: _Walked, index: LocationIndex, shard: Shard | None) -> list[tuple[str, str]]:
    """Known places under the walked root whose file is gone.

    Places below a folder that could not be listed are kept: their files may well exist.
    """
    blocked = tuple(
        "" if folder == "." else folder.rstrip("/") + "/" for folder, _ in walk.unlistable
    )
    gone = []
    for root, path in index.places_under(str(walk.root)):
        if path in walk.seen or (shard is not None and not shard.owns(path)):
            continue
        if blocked and path.startswith(blocked):
            continue
        gone.append((root, path))
    return gone


def _refuse_empty(walk: _Walked, index: LocationIndex, shard: Shard | None) -> None:
    known = sum(
        shard is None or shard.owns(path) for _, path in index.places_under(str(walk.root))
    )
    if known and not walk.seen and not walk.unlistable:
        raise EmptyRootError(
            f"{walk.root} has no image files, but the collection has {known} "
            f"image{'s' if known != 1 else ''} there; "
            "refusing to remove them all (a detached drive?): pass --allow-empty to remove "
            "them, or --keep-missing to keep them"
        )
