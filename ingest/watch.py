"""Keep a folder in sync: additions, deletions, moves and edits applied as they happen.

A watchdog observer (inotify on Linux, or stat polling for network shares and Docker Desktop
bind mounts) notes every created, modified, moved or deleted image file or folder. Once the
folder has been quiet for ``debounce`` seconds *and* every changed file kept its size and
mtime across that wait (so files still being copied in are not read half-written), the
folder is synced with :func:`~ingest.sync.sync_roots`: unchanged files cost a ``stat``, moves
and renames cost a hash and no embedding, deleted files leave the collection.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ingest.report import IngestReport
from ingest.runner import FolderIngester
from ingest.sync import EmptyRootError, sync_roots
from service.errors import SimimgError
from service.images import is_image_name
from service.walker import Shard, relative_posix

Clock = Callable[[], float]
Signature = tuple[int, int]  # (size, mtime_ns)
_EVENTS = {
    EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED,
    EVENT_TYPE_DELETED, EVENT_TYPE_ATTRIB,  # a new mtime: the sync records it
}


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass
class _Entry:
    changed_at: float
    signature: Signature | None


class PendingFiles:
    """Files seen changing; each is released once quiet for ``debounce`` s and stable.

    ``touch`` may be called from any thread; ``ready`` from the consuming thread.
    """

    def __init__(self, debounce: float, clock: Clock = time.monotonic) -> None:
        self.debounce = debounce
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Path, _Entry] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def touch(self, path: Path) -> None:
        """Note that ``path`` changed now (restarts its quiet period)."""
        entry = _Entry(self._clock(), _signature(path))
        with self._lock:
            self._entries[path] = entry

    def ready(self) -> list[tuple[Path, Signature]]:
        """Files quiet for the debounce period whose size and mtime held still, sorted.

        A file that changed during its wait starts a new quiet period; a vanished one is
        dropped.
        """
        now = self._clock()
        released: list[tuple[Path, Signature]] = []
        with self._lock:
            due = [p for p, e in self._entries.items() if now - e.changed_at >= self.debounce]
            for path in due:
                entry = self._entries[path]
                current = _signature(path)
                if current is None:
                    del self._entries[path]
                elif current != entry.signature:
                    self._entries[path] = _Entry(now, current)
                else:
                    del self._entries[path]
                    released.append((path, current))
        return sorted(released)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _EVENTS:
            return
        paths = [event.src_path]
        if event.event_type == EVENT_TYPE_MOVED:
            paths.append(event.dest_path)
        # A file seen leaving (not a drive detaching, which sends no such event per file).
        removal = event.event_type in (EVENT_TYPE_DELETED, EVENT_TYPE_MOVED)
        for index, raw in enumerate(paths):
            path = Path(raw if isinstance(raw, str) else raw.decode())
            if event.is_directory:
                self._watcher.folder_changed(path, removal=removal and index == 0)
            else:
                self._watcher.offer(path, removal=removal and index == 0)


class FolderWatcher:
    """Keep ``roots`` in sync until :meth:`stop` is called (see the module docstring).

    The roots are synced together, so a file moved from one to another keeps its vectors.

    Usage: :meth:`start` (events are noted from then on), optionally sync what is already
    there, then :meth:`run` until :meth:`stop` (or the ``stop`` event) and :meth:`close`.
    ``on_report`` receives the report of each sync round.
    """

    def __init__(
        self,
        ingester: FolderIngester,
        roots: Path | Sequence[Path],
        *,
        shard: Shard | None = None,
        debounce: float = 2.0,
        polling: bool = False,
        poll_interval: float = 1.0,
        keep_missing: bool = False,
        on_report: Callable[[IngestReport], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        round_lock: AbstractContextManager[Any] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ingester = ingester
        self.roots = [r.resolve() for r in ([roots] if isinstance(roots, Path) else roots)]
        self.shard = shard
        self.keep_missing = keep_missing
        self.pending = PendingFiles(debounce, clock)
        self.on_report = on_report
        self.on_error = on_error
        # Held for each whole round (e.g. the service's lock: one writer at a time).
        self._round_lock = round_lock if round_lock is not None else nullcontext()
        self.total = IngestReport(root=", ".join(map(str, self.roots)))
        self._clock = clock
        self._debounce = debounce
        self._changed_at: float | None = None  # last event of the round not yet synced
        self._removals_seen = False  # files were seen leaving during this round
        self._events = threading.Lock()
        self._stop = threading.Event()
        self._tick = min(0.25, max(debounce / 4, 0.02))
        self._observer: BaseObserver = (
            PollingObserver(timeout=poll_interval) if polling else Observer()
        )
        for root in self.roots:
            self._observer.schedule(_Handler(self), str(root), recursive=True)

    def _relative(self, path: Path) -> str | None:
        """``path`` relative to the root it lies under, unless it is hidden or outside."""
        for root in self.roots:
            try:
                relative = relative_posix(path, root)
            except ValueError:
                continue
            if not any(part.startswith(".") for part in relative.split("/")):
                return relative
            return None
        return None

    def accepts(self, path: Path) -> bool:
        """An image file below a root, not hidden, and in this worker's shard."""
        relative = self._relative(path)
        if relative is None:
            return False
        return is_image_name(path) and (self.shard is None or self.shard.owns(relative))

    def offer(self, path: Path, removal: bool = False) -> None:
        """Note a change of ``path`` if this watcher is responsible for it.

        ``removal``: the file was seen being deleted or moved away.
        """
        if self.accepts(path):
            self.pending.touch(path)
            self._note_change(removal)

    def folder_changed(self, path: Path, removal: bool = False) -> None:
        """A folder below a root appeared, vanished or moved: its files did too."""
        if self._relative(path) is not None:
            self._note_change(removal)

    def _note_change(self, removal: bool = False) -> None:
        with self._events:
            self._changed_at = self._clock()
            self._removals_seen = self._removals_seen or removal

    def start(self) -> None:
        """Start receiving file events (call before listing the folder, to miss nothing)."""
        self._observer.start()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the round in progress (thread- and signal-safe)."""
        self._stop.set()

    def run(self, stop: threading.Event | None = None) -> IngestReport:
        """Sync after each quiet period until stopped; returns the totals of every round."""
        if not self._observer.is_alive():
            self.start()
        while not (self._stop.is_set() or (stop is not None and stop.is_set())):
            if self._due():
                self._sync()
            self._stop.wait(self._tick)
        return self.total

    def _due(self) -> bool:
        """Changes were seen, the folder is quiet, and every changed file held still."""
        with self._events:
            changed_at = self._changed_at
        if changed_at is None or self._clock() - changed_at < self._debounce:
            return False
        self.pending.ready()  # releases files that held still; restarts the others
        return len(self.pending) == 0

    def _sync(self) -> None:
        with self._events:
            self._changed_at = None  # events from now on start the next round
            removals, self._removals_seen = self._removals_seen, False
        try:
            # A root emptied by deletions the watcher saw is empty for real; one that is
            # empty without them (an unmounted drive) is refused as in a plain ingest.
            with self._round_lock:
                report = sync_roots(
                    self.ingester, self.roots, shard=self.shard,
                    keep_missing=self.keep_missing, allow_empty=removals,
                )
        except Exception as exc:  # a long-running watcher reports and tries again later
            if self.on_error:
                self.on_error(str(exc) if isinstance(exc, SimimgError) else repr(exc))
            if not isinstance(exc, EmptyRootError):
                self._note_change(removals)  # retry after the next quiet period
            return
        self.total.merge(report)
        self.total.seconds += report.seconds
        if self.on_report:
            self.on_report(report)

    def close(self) -> None:
        """Stop the observer thread and wait for it."""
        self._stop.set()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While active, SIGINT/SIGTERM call ``stop``; a second Ctrl-C interrupts at once.

    Call from the main thread. The previous handlers are restored on exit.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
