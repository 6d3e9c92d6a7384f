"""Clustering run records in the state directory: which labelling the `cluster` payload holds.

Three files per collection, all written atomically (:mod:`service.atomic`):

* ``<collection>.cluster_run.json``: the last *completed* run (what ``status`` shows).
* ``<collection>.cluster_<run_id>.npz``: a run's labels, staged before any payload changes.
* ``<collection>.cluster_pending.json``: the commit point. Once it exists the run is decided
  and must be rolled forward (its staged labels applied to every point, then the run record
  saved and the pending record removed). A run killed before it exists left no trace in the
  collection; one killed after it is completed by the next ``cluster`` / ``clusters`` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from service.atomic import atomic_write, read_json, write_json_atomic
from service.config import Settings


def run_record_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.cluster_run.json"


def pending_record_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.cluster_pending.json"


def staged_labels_path(settings: Settings, run_id: str) -> Path:
    return settings.state_dir / f"{settings.collection}.cluster_{run_id}.npz"


def current_run(settings: Settings) -> dict[str, Any] | None:
    """The last completed clustering run, or None if the collection was never clustered.

    When a later run was committed but not fully applied (the process was killed), the
    record carries ``"pending_run_id"``: the next ``cluster``/``clusters`` call finishes it.
    """
    record = read_json(run_record_path(settings))
    pending = pending_run(settings)
    if pending is not None:
        record = dict(record or {})
        record["pending_run_id"] = pending["run_id"]
    return record


def save_run(settings: Settings, record: dict[str, Any]) -> None:
    write_json_atomic(run_record_path(settings), record)


def pending_run(settings: Settings) -> dict[str, Any] | None:
    """The committed-but-unapplied run (``run_id``, ``record``), if any."""
    return read_json(pending_record_path(settings))


def stage_labels(settings: Settings, run_id: str, ids: list[str], labels: np.ndarray) -> Path:
    """Write a run's labels to the state dir (fsynced, renamed into place)."""
    path = staged_labels_path(settings, run_id)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, ids=np.asarray(ids, dtype="U36"), labels=np.asarray(labels, np.int32))
    return path


def load_staged_labels(settings: Settings, run_id: str) -> tuple[list[str], np.ndarray]:
    with np.load(staged_labels_path(settings, run_id)) as data:
        return data["ids"].tolist(), data["labels"].astype(np.int64)


def commit_run(settings: Settings, run_id: str, record: dict[str, Any]) -> None:
    """The commit point: from here on the run is rolled forward, never back."""
    write_json_atomic(pending_record_path(settings), {"run_id": run_id, "record": record})


def complete_run(settings: Settings, run_id: str, record: dict[str, Any]) -> None:
    """Labels are applied: make the run current, then drop the pending record and stage."""
    save_run(settings, record)
    pending_record_path(settings).unlink(missing_ok=True)
    discard_staged(settings, keep=None)


def discard_staged(settings: Settings, keep: str | None) -> None:
    """Delete staged label files, except the one of run ``keep``."""
    for path in settings.state_dir.glob(f"{settings.collection}.cluster_*.npz"):
        if keep is None or path != staged_labels_path(settings, keep):
            path.unlink(missing_ok=True)
