"""Background write jobs (ingest, train, cluster): queued, run one at a time, recorded.

Each job is a JSON record in ``data_dir/state/jobs/ID.json``, rewritten atomically on every
state change (and at most once a second for progress). A service that starts and finds a
record still ``queued`` or ``running`` was killed while it waited or ran: that job is shown
as ``interrupted``; running it again is safe (ingest skips stored content, train resumes
its pending model, a committed clustering run is rolled forward when the store opens).

All writers share ``write_lock``: a job holds it while it runs, and the folder watchers of
``serve --watch`` take it for each round, so at most one write runs at any time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from service.atomic import read_json, write_json_atomic
from service.errors import ConfigError, PointNotFoundError, SimimgError

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted"
)
ACTIVE = (QUEUED, RUNNING)
_PROGRESS_SAVE_SECONDS = 1.0
_KEEP_RECORDS = 200


class JobCancelled(Exception):
    """Raised inside a running job (at a progress point) once it was cancelled."""


class JobConflictError(SimimgError):
    """The same job is already queued or running, or the job cannot change state."""


class JobNotFoundError(PointNotFoundError):
    """No job has this id."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    state: str = QUEUED
    progress: dict[str, Any] = field(
        default_factory=lambda: {"done": 0, "total": None, "stage": None}
    )
    result: Any = None
    error: str | None = None
    messages: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class JobContext:
    """What a running job reports through: progress, notes, and the cancel check."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner = runner
        self.job = job
        self.cancelled = threading.Event()
        self.cancellable = True

    def stage(self, name: str, total: int | None) -> None:
        self.job.progress = {"done": 0, "total": total, "stage": name}
        self._runner.save(self.job)
        self.check()

    def set_total(self, total: int | None) -> None:
        self.job.progress["total"] = total
        self._runner.save(self.job)

    def advance(self, n: int = 1) -> None:
        self.job.progress["done"] = int(self.job.progress.get("done") or 0) + n
        self._runner.save(self.job, throttle=True)
        self.check()

    def update(self, stage: str, done: int, total: int | None) -> None:
        self.job.progress = {"done": done, "total": total, "stage": stage}
        self._runner.save(self.job, throttle=True)
        self.check()

    def message(self, text: str) -> None:
        self.job.messages.append(text)
        self._runner.save(self.job, throttle=True)

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled (and may still stop)."""
        if self.cancellable and self.cancelled.is_set():
            raise JobCancelled


JobHandler = Callable[[dict[str, Any], JobContext], Any]


class JobRunner:
    """One worker thread running queued jobs in order."""

    def __init__(
        self, directory: Path, handlers: dict[str, JobHandler], write_lock: threading.Lock
    ) -> None:
        self.directory = directory
        self.handlers = handlers
        self.write_lock = write_lock
        self._jobs: dict[str, Job] = {}
        self._queue: Queue[str | None] = Queue()
        self._lock = threading.RLock()
        self._running: JobContext | None = None
        self._saved_at: dict[str, float] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="simimg-jobs", daemon=True)
        self._load()

    # -- records -----------------------------------------------------------------------

    def _load(self) -> None:
        """Read earlier jobs; those left queued or running were interrupted by a crash."""
        if not self.directory.is_dir():
            return
        jobs = []
        for path in self.directory.glob("*.json"):
            try:
                record = read_json(path)
                jobs.append(Job(**record))
            except (OSError, ValueError, TypeError):
                continue
        jobs.sort(key=lambda job: job.created_at)
        for old in jobs[:-_KEEP_RECORDS]:  # keep the directory small: the newest records
            if old.state not in ACTIVE:
                (self.directory / f"{old.id}.json").unlink(missing_ok=True)
        for job in jobs[-_KEEP_RECORDS:]:
            if job.state in ACTIVE:
                job.state = INTERRUPTED
                job.error = "the service stopped before this job finished; run it again"
                job.finished_at = job.finished_at or _now()
                self.save(job)
            self._jobs[job.id] = job

    def save(self, job: Job, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._saved_at.get(job.id, 0.0) < _PROGRESS_SAVE_SECONDS:
            return
        self._saved_at[job.id] = now
        write_json_atomic(self.directory / f"{job.id}.json", job.to_json())

    # -- API -----------------------------------------------------------------------------

    def submit(self, kind: str, params: dict[str, Any]) -> Job:
        """Queue a job (params already validated). 409 when the same job is active."""
        if kind not in self.handlers:
            raise ConfigError(f"kind must be one of {', '.join(self.handlers)}, got {kind!r}")
        with self._lock:
            for other in self._jobs.values():
                if other.state in ACTIVE and other.kind == kind and other.params == params:
                    raise JobConflictError(
                        f"the same {kind} job is already {other.state}: {other.id}"
                    )
            job = Job(id=uuid.uuid4().hex[:12], kind=kind, params=params)
            self._jobs[job.id] = job
            self.save(job)
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id}")
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask a running one to stop at its next step."""
        with self._lock:
            job = self.get(job_id)
            if job.state == QUEUED:
                self._finish(job, CANCELLED)
            elif job.state == RUNNING and self._running is not None:
                self._running.cancelled.set()
            else:
                raise JobConflictError(f"job {job_id} is already {job.state}")
        return job

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop: queued jobs stay recorded as interrupted, the running one is cancelled."""
        with self._lock:
            self._stopping = True
            if self._running is not None:
                self._running.cancelled.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._lock:
            for job in self._jobs.values():
                if job.state in ACTIVE:
                    job.error = "the service stopped before this job finished; run it again"
                    self._finish(job, INTERRUPTED)

    def wait_idle(self, timeout: float) -> bool:
        """True once no job is queued or running (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(job.state in ACTIVE for job in self.list()):
                return True
            time.sleep(0.05)
        return False

    # -- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            try:
                job_id = self._queue.get(timeout=1.0)
            except Empty:
                continue
            if job_id is None:
                return
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None or job.state != QUEUED:
                    continue
                context = JobContext(self, job)
                self._running = context
                job.state, job.started_at = RUNNING, _now()
                self.save(job)
            try:
                with self.write_lock:
                    context.check()
                    result = self.handlers[job.kind](job.params, context)
            except JobCancelled:
                if self._stopping:
                    job.error = "the service stopped before this job finished; run it again"
                self._finish(job, INTERRUPTED if self._stopping else CANCELLED)
            except SimimgError as exc:
                job.error = str(exc)
                self._finish(job, FAILED)
            except Exception as exc:  # a bug or an engine failure: keep serving
                job.error = f"{type(exc).__name__}: {exc}"
                self._finish(job, FAILED)
            else:
                job.result = result
                self._finish(job, DONE)
            finally:
                with self._lock:
                    self._running = None

    def _finish(self, job: Job, state: str) -> None:
        job.state, job.finished_at = state, _now()
        self.save(job)
