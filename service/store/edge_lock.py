"""The embedded shard's directory lock: one process (and one store object) per shard."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import IO

from service.errors import StoreError, StoreInUseError
from service.holder import describe_holder


def acquire_dir_lock(path: Path, in_use: Callable[[], StoreInUseError]) -> IO[bytes]:
    """An exclusive, non-blocking flock on ``<shard dir>.lock``, held until closed.

    flock locks belong to the open file description, so a second EdgeStore on the same
    directory is refused in the same process as well as in another one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 - held open
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise in_use() from None
    return handle


def in_use_error(path: Path, data_dir: Path) -> StoreInUseError:
    """The shard at ``path`` is held by another process: who, and what to do."""
    holder = describe_holder(data_dir)
    who = holder or "another simimg process (e.g. `simimg-admin serve` or an ingest)"
    return StoreInUseError(
        f"{path} is in use by {who}; stop it, or set QDRANT_URL to use a "
        "Qdrant server that many processes can share"
    )


def engine_error(e: Exception, path: Path, data_dir: Path) -> Exception:
    """A qdrant-edge error as simimg's: its first line, or the in-use error for a held WAL."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "WouldBlock" in msg:
        return in_use_error(path, data_dir)
    return StoreError(f"qdrant-edge: {msg}")
