"""Keep ingesting a folder: new or changed image files are stored as they arrive.

A watchdog observer (inotify on Linux, or stat polling for network shares and Docker Desktop
bind mounts) queues every created, modified or moved-in image file. A file is ingested once
it has been quiet for ``debounce`` seconds *and* its size and mtime did not change across
that wait, so files still being copied in are not read half-written. Files are ingested by
:class:`~ingest.runner.FolderIngester` (content-addressed: a file whose content is already
stored costs one hash). Deleted files are not removed from the collection.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
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
from service.images import is_image_name
from service.walker import Shard, iter_image_files, relative_posix

Clock = Callable[[], float]
Signature = tuple[int, int]  # (size, mtime_ns)
_EVENTS = {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED}


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
        target = event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path
        path = Path(target if isinstance(target, str) else target.decode())
        if event.is_directory:
            if event.event_type in (EVENT_TYPE_CREATED, EVENT_TYPE_MOVED):
                # a folder moved in brings files that raise no events of their own
                for file in iter_image_files(path):
                    self._watcher.offer(file)
        else:
            self._watcher.offer(path)


class FolderWatcher:
    """Ingest image files under ``root`` as they arrive, until :meth:`stop` is called.

    Usage: :meth:`start` (events are queued from then on), optionally ingest what is already
    there, then :meth:`run` until :meth:`stop` (or the ``stop`` event) and :meth:`close`.
    ``on_report`` receives the report of each round that found files.
    """

    def __init__(
        self,
        ingester: FolderIngester,
        root: Path,
        *,
        shard: Shard | None = None,
        debounce: float = 2.0,
        polling: bool = False,
        poll_interval: float = 1.0,
        on_report: Callable[[IngestReport], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ingester = ingester
        self.root = root.resolve()
        self.shard = shard
        self.pending = PendingFiles(debounce, clock)
        self.on_report = on_report
        self.total = IngestReport(root=str(self.root))
        self._done: dict[Path, Signature] = {}
        self._stop = threading.Event()
        self._tick = min(0.25, max(debounce / 4, 0.02))
        self._chunk = max(1, ingester.batch_size * 4)
        self._observer: BaseObserver = (
            PollingObserver(timeout=poll_interval) if polling else Observer()
        )
        self._observer.schedule(_Handler(self), str(self.root), recursive=True)

    def accepts(self, path: Path) -> bool:
        """An image file below the root, not hidden, and in this worker's shard."""
        try:
            relative = relative_posix(path, self.root)
        except ValueError:
            return False
        if any(part.startswith(".") for part in relative.split("/")):
            return False
        return is_image_name(path) and (self.shard is None or self.shard.owns(relative))

    def offer(self, path: Path) -> None:
        """Queue ``path`` if this watcher is responsible for it."""
        if self.accepts(path):
            self.pending.touch(path)

    def start(self) -> None:
        """Start receiving file events (call before listing the folder, to miss nothing)."""
        self._observer.start()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in progress (thread- and signal-safe)."""
        self._stop.set()

    def run(self, stop: threading.Event | None = None) -> IngestReport:
        """Ingest ready files until stopped; returns the totals of every round."""
        if not self._observer.is_alive():
            self.start()
        while not (self._stop.is_set() or (stop is not None and stop.is_set())):
            ready = [
                (path, sig) for path, sig in self.pending.ready() if self._done.get(path) != sig
            ]
            for start in range(0, len(ready), self._chunk):
                if self._stop.is_set() or (stop is not None and stop.is_set()):
                    break
                self._ingest(ready[start : start + self._chunk])
            self._stop.wait(self._tick)
        return self.total

    def _ingest(self, items: Iterable[tuple[Path, Signature]]) -> None:
        items = list(items)
        report = self.ingester.ingest(self.root, [path for path, _ in items])
        failed = {path for path, _ in report.failed}
        for path, sig in items:
            if relative_posix(path, self.root) not in failed:
                self._done[path] = sig
        _accumulate(self.total, report)
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


def _accumulate(total: IngestReport, report: IngestReport) -> None:
    total.found += report.found
    total.added += report.added
    total.already_stored += report.already_stored
    total.duplicates += report.duplicates
    total.failed.extend(report.failed)
    total.seconds += report.seconds


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
