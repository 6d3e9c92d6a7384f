"""Copy a collection between two stores: embedded <-> Qdrant server (or cluster).

Points are copied whole (every named vector and the payload) in batches; ids are kept, so
re-running an interrupted migration simply upserts the same points again. At the end the
target must hold exactly the source's ids.

Store addresses (``--to`` / ``--from`` of ``simimg-admin migrate``):

* ``http://host:6333`` or ``https://...``: a Qdrant server or cluster (``QDRANT_API_KEY``
  is sent when set);
* ``path:/some/dir``: qdrant-client's local mode in that directory, which speaks the same
  client API as a server; used by the tests and handy for a quick look at the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from service.config import Settings
from service.errors import ConfigError, StoreError
from service.store import ready
from service.store.base import VectorStore

LOCAL_PREFIX = "path:"
_ID_CHUNK = 1024

ProgressCallback = Callable[[int], None]


class MigrationError(StoreError):
    """The target does not hold exactly the source's points after the copy."""


@dataclass(frozen=True)
class MigrationReport:
    """What a migration copied and what the target holds afterwards."""

    copied: int
    source_count: int
    target_count: int

    def to_json(self) -> dict[str, int]:
        return {
            "copied": self.copied,
            "source_count": self.source_count,
            "target_count": self.target_count,
        }


def open_remote(settings: Settings, address: str) -> VectorStore:
    """A ready :class:`ServerStore` for a URL or a ``path:`` local-mode directory."""
    from service.store.server import ServerStore

    if address.startswith(LOCAL_PREFIX):
        location = address[len(LOCAL_PREFIX) :]
        if not location:
            raise ConfigError(f"{address!r}: give a directory after {LOCAL_PREFIX!r}")
        store = ServerStore(replace(settings, qdrant_url=None), location=location)
    elif address.startswith(("http://", "https://")):
        store = ServerStore(replace(settings, qdrant_url=address))
    else:
        raise ConfigError(
            f"{address!r} is not a Qdrant address: use http(s)://host:6333 "
            f"or {LOCAL_PREFIX}/a/directory for qdrant-client's local mode"
        )
    return ready(store)


def open_embedded(settings: Settings) -> VectorStore:
    """A ready embedded store for the settings' data directory, whatever QDRANT_URL says."""
    from service.store.edge import EdgeStore

    return ready(EdgeStore(replace(settings, qdrant_url=None)))



def copy_points(
    source: VectorStore,
    target: VectorStore,
    batch_size: int = 256,
    on_progress: ProgressCallback | None = None,
) -> MigrationReport:
    """Upsert every point of ``source`` into ``target``, then verify counts and ids.

    ``on_progress(n)`` is called after each batch of ``n`` points. Raises
    :class:`MigrationError` when a source id is missing from the target or the target holds
    points the source does not have (e.g. it already held another collection).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    copied = 0
    for page in source.scroll(batch_size=batch_size, with_vectors=True):
        target.upsert(page)
        copied += len(page)
        if on_progress:
            on_progress(len(page))
    target.flush()
    report = MigrationReport(copied, source.count(), target.count())
    _verify(source, target, report)
    return report


def _verify(source: VectorStore, target: VectorStore, report: MigrationReport) -> None:
    missing = 0
    for page in source.scroll(batch_size=_ID_CHUNK):
        ids = [p.id for p in page]
        missing += len(ids) - len(target.existing_ids(ids))
    if missing:
        raise MigrationError(f"{missing} of {report.source_count} points are missing in the target")
    if report.target_count != report.source_count:
        extra = report.target_count - report.source_count
        raise MigrationError(
            f"the target holds {report.target_count} points, {extra} more than the source's "
            f"{report.source_count}: it already had other points in this collection"
        )
