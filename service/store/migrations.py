"""Schema migrations, applied in place when a collection is opened (as rclip does).

Each step takes a collection from version N to N+1 and is idempotent: it only changes
points that still have the old form, so a step killed half-way is simply run again on the
next open. The version record is written after each step completes, never before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from service.errors import StoreError
from service.store import schema
from service.store.records import PointRecord

_PAGE = 512


class VersionedStore(Protocol):
    """What a migration needs of a store (:class:`~service.store.base.StoreBase` has it)."""

    location: str
    notify: Callable[[str], None] | None

    def schema_version(self) -> int: ...

    def set_schema_meta(self, **values: Any) -> None: ...

    def scroll(
        self, batch_size: int = ..., with_vectors: bool | Sequence[str] = ...,
        where: Any = ..., with_payload: bool | Sequence[str] = ...,
    ) -> Iterator[list[PointRecord]]: ...

    def set_payload(self, payload: Mapping[str, Any], ids: Sequence[str]) -> None: ...

    def flush(self) -> None: ...


def _add_locations(store: VersionedStore) -> None:
    """1 -> 2: each point's single ``root``/``path`` becomes its first ``locations`` entry.

    ``mtime_ns`` is unknown for migrated entries, so the next sync re-hashes those files
    once (reading, not embedding) and records it.
    """
    keys = [schema.PAYLOAD_ROOT, schema.PAYLOAD_PATH, schema.PAYLOAD_LOCATIONS]
    for page in store.scroll(batch_size=_PAGE, with_payload=keys):
        for record in page:
            payload = record.payload
            if schema.PAYLOAD_LOCATIONS in payload:
                continue
            root, path = payload.get(schema.PAYLOAD_ROOT), payload.get(schema.PAYLOAD_PATH)
            locations = (
                [{schema.LOCATION_ROOT: root, schema.LOCATION_PATH: path}]
                if root is not None and path is not None
                else []
            )
            store.set_payload({schema.PAYLOAD_LOCATIONS: locations}, [record.id])
    store.flush()


def _add_duplicate_group(store: VersionedStore) -> None:
    """2 -> 3: the ``duplicate_group`` payload index.

    ``ensure_collection`` creates every missing payload index before migrating, so the
    index already exists here and no point changes: ``duplicate_group`` is absent until the
    first ``duplicates`` scan, exactly as on a new collection.
    """


def _add_folders(store: VersionedStore) -> None:
    """3 -> 4: ``folders`` from each point's ``locations`` (payload only).

    The other schema-4 keys need the file: photo metadata (``taken_at``, ``camera``,
    ``location_gps``, ``modified_at``) is read by the next sync, which re-reads the header of
    every file whose point has no ``modified_at`` (nothing is embedded again); ``labels``
    come with an embedding, so points stored before schema 4 have none until re-ingested.
    """
    # imported here: service.locations imports the store package, which imports this module
    from service.locations import folders_of, locations_of

    keys = [schema.PAYLOAD_ROOT, schema.PAYLOAD_PATH, schema.PAYLOAD_LOCATIONS,
            schema.PAYLOAD_FOLDERS]
    for page in store.scroll(batch_size=_PAGE, with_payload=keys):
        for record in page:
            if schema.PAYLOAD_FOLDERS not in record.payload:
                folders = folders_of(locations_of(record.payload))
                store.set_payload({schema.PAYLOAD_FOLDERS: folders}, [record.id])
    store.flush()


# version N -> the step that makes it N+1
MIGRATIONS: dict[int, Callable[[VersionedStore], None]] = {
    1: _add_locations,
    2: _add_duplicate_group,
    3: _add_folders,
}


def bring_up_to_date(store: VersionedStore, *, created: bool) -> None:
    """Stamp a new collection, migrate an older one, refuse a newer one."""
    if created:
        store.set_schema_meta(schema_version=schema.SCHEMA_VERSION)
        return
    version = store.schema_version()
    if version > schema.SCHEMA_VERSION:
        raise StoreError(
            f"collection {store.location} has schema version {version}, newer than this "
            f"simimg's {schema.SCHEMA_VERSION}: upgrade simimg to open it"
        )
    while version < schema.SCHEMA_VERSION:
        if store.notify:
            store.notify(
                f"migrating collection {store.location} from schema {version} to {version + 1}"
            )
        MIGRATIONS[version](store)
        version += 1
        store.set_schema_meta(schema_version=version)
