"""The embedded shard's directory lock: one process (and one store object) per shard."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import IO

from service.errors import StoreInUseError


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
