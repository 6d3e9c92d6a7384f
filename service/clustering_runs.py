"""The record of the current clustering run (which labelling the `cluster` payload holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.config import Settings
from service.state import read_json, write_json_atomic


def run_record_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.cluster_run.json"


def current_run(settings: Settings) -> dict[str, Any] | None:
    """The last completed clustering run, or None if the collection was never clustered."""
    return read_json(run_record_path(settings))


def save_run(settings: Settings, record: dict[str, Any]) -> None:
    write_json_atomic(run_record_path(settings), record)
