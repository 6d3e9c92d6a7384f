"""The running service: one open collection shared by the page, the REST API and the jobs."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from api.job_kinds import RUNNERS, VALIDATORS
from api.jobs import Job, JobRunner
from ingest.runner import FolderIngester
from ingest.watch import FolderWatcher
from service.collection import open_collection
from service.config import Settings
from service.errors import ConfigError, SimimgError
from service.locations import locations_of
from service.pipeline import EmbeddingPipeline, build_pipeline
from service.search import Searcher
from service.store.schema import PAYLOAD_LOCATIONS
from service.thumbnails import ThumbnailCache


class ForbiddenFolderError(SimimgError):
    """An API caller asked the service to read a folder outside the allowed roots."""


class SimimgService:
    """Owns the store, the searcher, the thumbnail cache, the job queue and the watchers."""

    def __init__(
        self,
        settings: Settings,
        watch: Sequence[Path] = (),
        notify: Callable[[str], None] | None = None,
        watch_debounce: float = 2.0,
        watch_poll: bool = False,
    ) -> None:
        self.settings = settings
        self.token = secrets.token_urlsafe(32)  # proves a local caller (see service.holder)
        self.store = open_collection(settings, notify=notify)
        self.notify = notify or (lambda message: None)
        try:
            self.searcher = Searcher(self.store, build_pipeline(settings))
            self.thumbnails = ThumbnailCache(self.store, settings)
            self.write_lock = threading.Lock()
            self._write_pipeline: EmbeddingPipeline | None = None
            self._pipeline_lock = threading.Lock()
            self.jobs = JobRunner(
                settings.state_dir / "jobs",
                {kind: self._runner(kind) for kind in RUNNERS},
                self.write_lock,
            )
            self.watch_roots = [folder.resolve() for folder in watch]
            self._known_roots: set[Path] | None = None
            self._watchers: list[tuple[FolderWatcher, threading.Thread]] = []
            self._watch_debounce = watch_debounce
            self._watch_poll = watch_poll
        except BaseException:
            self.store.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.jobs.start()
        if self.watch_roots:
            self._watch(self.watch_roots)

    def close(self) -> None:
        for watcher, _ in self._watchers:
            watcher.stop()
        self.jobs.close()
        for watcher, thread in self._watchers:
            thread.join(timeout=60)
            watcher.close()
        self.store.close()

    def _watch(self, roots: list[Path]) -> None:
        """Queue a sync of ``roots``, then keep them in sync as files change.

        One watcher for all roots, so a file moved from one to another keeps its vectors;
        each of its rounds waits for the write lock like a job (one writer at a time).
        """
        watcher = FolderWatcher(
            FolderIngester(self.store, self.write_pipeline()), roots,
            debounce=self._watch_debounce, polling=self._watch_poll,
            round_lock=self.write_lock,
            on_report=lambda report: self.notify(f"watch: {report.summary()}"),
            on_error=lambda message: self.notify(f"watch: not synced: {message}"),
        )
        watcher.start()  # before the sync is queued, so no file slips between the two
        self.submit_job({"kind": "ingest", "folders": [str(r) for r in roots]}, trusted=True)
        thread = threading.Thread(target=watcher.run, name="simimg-watch", daemon=True)
        thread.start()
        self._watchers.append((watcher, thread))

    # -- jobs ----------------------------------------------------------------------------

    def submit_job(self, body: dict[str, Any], trusted: bool = False) -> Job:
        kind = body.get("kind")
        if kind not in VALIDATORS:
            raise ConfigError(f"kind must be one of {', '.join(VALIDATORS)}, got {kind!r}")
        params = VALIDATORS[kind](self, body, trusted)
        return self.jobs.submit(kind, params)

    def _runner(self, kind: str) -> Callable[[dict[str, Any], Any], Any]:
        run = RUNNERS[kind]
        return lambda params, context: run(self, params, context)

    def write_pipeline(self) -> EmbeddingPipeline:
        """The pipeline of ingest jobs and watchers (separate from the searches' one)."""
        with self._pipeline_lock:
            if self._write_pipeline is None:
                self._write_pipeline = build_pipeline(self.settings)
            return self._write_pipeline

    # -- allowed roots -------------------------------------------------------------------

    def allowed_roots(self) -> list[Path]:
        """SIMIMG_ALLOWED_ROOTS, else the watched roots and the roots in the collection."""
        explicit = self.settings.allowed_root_list
        if explicit:
            return explicit
        if self._known_roots is None:
            roots: set[Path] = set()
            for page in self.store.scroll(batch_size=2048, with_payload=[PAYLOAD_LOCATIONS]):
                roots.update(Path(loc.root) for r in page for loc in locations_of(r.payload))
            self._known_roots = roots
        return sorted({*self.watch_roots, *self._known_roots})

    def check_allowed(self, folder: Path) -> None:
        roots = self.allowed_roots()
        if not any(folder.is_relative_to(root) for root in roots):
            shown = ", ".join(map(str, roots)) or "none"
            raise ForbiddenFolderError(
                f"folder {folder} is outside the allowed roots ({shown}); "
                "set SIMIMG_ALLOWED_ROOTS on the service to allow it"
            )

    def note_root(self, root: Path) -> None:
        """An ingest stored images under ``root``: it is now a root of the collection."""
        if self._known_roots is not None:
            self._known_roots.add(root.resolve())
