"""Who holds the embedded data directory, so a refused command can say so.

The embedded engine locks its directory; a second process only learns "would block". A
long-running holder (``simimg-admin serve``) records itself here so others can name it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.atomic import read_json, write_json_atomic


def _record_path(data_dir: Path) -> Path:
    return data_dir / "state" / "holder.json"


@contextmanager
def holding(data_dir: Path, description: str) -> Iterator[None]:
    """While active, ``describe_holder`` reports ``description`` for this process."""
    path = _record_path(data_dir)
    write_json_atomic(path, {"pid": os.getpid(), "description": description})
    try:
        yield
    finally:
        record = read_json(path)
        if record and record.get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def describe_holder(data_dir: Path) -> str | None:
    """The recorded holder, if that process is still alive."""
    try:
        record = read_json(_record_path(data_dir))
    except (OSError, ValueError):
        return None
    if not record or not _alive(int(record.get("pid", 0))):
        return None
    return f"{record.get('description')} (pid {record['pid']})"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
