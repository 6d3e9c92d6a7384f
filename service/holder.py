"""Who holds the embedded data directory, so a refused command can say so.

The embedded engine locks its directory; a second process only learns "would block". A
long-running holder (``simimg-admin serve``) records itself here so others can name it,
and a service also records its address and a local token: a command run by a user who can
read the data directory sends its work to that service instead of being refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.atomic import read_json, write_json_atomic


def _record_path(data_dir: Path) -> Path:
    return data_dir / "state" / "holder.json"


@dataclass(frozen=True)
class ServiceAddress:
    """Where the holding service answers, and the token that proves a local caller."""

    url: str
    token: str
    pid: int


@contextmanager
def holding(
    data_dir: Path, description: str, url: str | None = None, token: str | None = None
) -> Iterator[None]:
    """While active, ``describe_holder`` reports ``description`` for this process.

    ``url`` and ``token``: a service's address and local token (the record is written with
    mode 0600 by the atomic writer, so only the data directory's owner can read the token).
    """
    path = _record_path(data_dir)
    record: dict[str, object] = {"pid": os.getpid(), "description": description}
    if url is not None:
        record.update(url=url, token=token)
    write_json_atomic(path, record)
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


def holding_service(data_dir: Path) -> ServiceAddress | None:
    """The running service that holds ``data_dir``, if any."""
    try:
        record = read_json(_record_path(data_dir))
    except (OSError, ValueError):
        return None
    if not record or not record.get("url") or not _alive(int(record.get("pid", 0))):
        return None
    return ServiceAddress(url=str(record["url"]), token=str(record.get("token") or ""),
                          pid=int(record["pid"]))


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
