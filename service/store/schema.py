"""The collection schema: a stable contract for anyone querying Qdrant directly.

Documented in docs/schema.md. Changing a name or type here is a breaking change: bump
``SCHEMA_VERSION`` and add the step to :mod:`service.store.migrations`.
"""

from __future__ import annotations

import uuid

# Version history (docs/schema.md has the details):
#   1  first release: one location per point in `root` / `path` (no version was stored)
#   2  `locations`: every place a content lives; the collection records its version
#   3  `duplicate_group` (integer, indexed): the group of the last `duplicates` scan
#   4  photo metadata and contents: `taken_at`, `modified_at`, `camera`, `location_gps`,
#      `labels`, `folders` (all indexed); `cluster_name` (indexed) and `map_x`/`map_y`, written
#      by `name-cluster` and `map` (absent until then)
SCHEMA_VERSION = 4
UNVERSIONED = 1  # a collection without a version record was written by schema 1

VECTOR_MOBILENET = "mobilenet"
VECTOR_AUTOENCODER = "autoencoder"
SPACES = (VECTOR_MOBILENET, VECTOR_AUTOENCODER)
MOBILENET_DIM = 1280

# Payload keys, with the Qdrant type each holds.
PAYLOAD_LOCATIONS = "locations"  # list of {"root", "path", "mtime_ns"}: every copy on disk
PAYLOAD_PATH = "path"  # keyword: the first location's path (relative, POSIX separators)
PAYLOAD_ROOT = "root"  # keyword: the first location's root (absolute folder path)
PAYLOAD_SHA256 = "sha256"  # keyword: hex SHA-256 of the file's bytes
PAYLOAD_WIDTH = "width"  # integer: pixels, after EXIF orientation
PAYLOAD_HEIGHT = "height"  # integer
PAYLOAD_FORMAT = "format"  # keyword: PIL format name, e.g. "JPEG"
PAYLOAD_FILE_SIZE = "file_size"  # integer: bytes
PAYLOAD_INGESTED_AT = "ingested_at"  # keyword: ISO-8601 UTC timestamp
PAYLOAD_CLUSTER = "cluster"  # integer: DBSCAN label, -1 noise; absent until clustered
PAYLOAD_AE_MODEL = "autoencoder_model"  # keyword: id of the model that made the vector
PAYLOAD_DUPLICATE_GROUP = "duplicate_group"  # integer: group of the last duplicates scan
PAYLOAD_TAKEN_AT = "taken_at"  # datetime (RFC 3339): EXIF capture time; absent without EXIF
PAYLOAD_MODIFIED_AT = "modified_at"  # datetime (RFC 3339, UTC): file mtime at ingest
PAYLOAD_CAMERA = "camera"  # keyword: EXIF "Make Model"
PAYLOAD_LOCATION_GPS = "location_gps"  # geo {"lat", "lon"}: EXIF GPS position
PAYLOAD_LABELS = "labels"  # keyword list: ImageNet classes seen, with their wider words
PAYLOAD_FOLDERS = "folders"  # keyword list: every folder (absolute) holding a location
PAYLOAD_CLUSTER_NAME = "cluster_name"  # keyword: name given to the point's cluster; absent if none
PAYLOAD_MAP_X = "map_x"  # float: 2-D map position in [0, 1] (`simimg-admin map`); absent until then
PAYLOAD_MAP_Y = "map_y"  # float

# Fields of one entry of `locations`, and the nested keys filters and indexes use.
LOCATION_ROOT = "root"
LOCATION_PATH = "path"
LOCATION_MTIME = "mtime_ns"  # integer: the file's modification time (ns) when last seen
PAYLOAD_LOCATION_ROOT_KEY = f"{PAYLOAD_LOCATIONS}[].{LOCATION_ROOT}"
PAYLOAD_LOCATION_PATH_KEY = f"{PAYLOAD_LOCATIONS}[].{LOCATION_PATH}"

# Payload indexes created with the collection: key -> Qdrant schema type name.
PAYLOAD_INDEXES = {
    PAYLOAD_CLUSTER: "integer",
    PAYLOAD_SHA256: "keyword",
    PAYLOAD_PATH: "keyword",
    PAYLOAD_AE_MODEL: "keyword",
    PAYLOAD_LOCATION_ROOT_KEY: "keyword",
    PAYLOAD_LOCATION_PATH_KEY: "keyword",
    PAYLOAD_DUPLICATE_GROUP: "integer",
    PAYLOAD_TAKEN_AT: "datetime",
    PAYLOAD_MODIFIED_AT: "datetime",
    PAYLOAD_CAMERA: "keyword",
    PAYLOAD_LOCATION_GPS: "geo",
    PAYLOAD_LABELS: "keyword",
    PAYLOAD_FOLDERS: "keyword",
    PAYLOAD_CLUSTER_NAME: "keyword",
}
# The one indexed field whose values get their own HNSW links, so a search within one
# cluster walks a graph of that cluster (Qdrant's payload-aware links). Each value of a field
# with links is a sub-graph built with the index: for `autoencoder_model` (one value on every
# point), `folders` or `locations[].root` that is a second whole graph per vector space
# (20,000 points, `cluster` + `root`: 35.4 s against 23.9 s without, docs/benchmarks-scale.md).
# The other fields filter through their payload index alone: a filter matching fewer points
# than the full-scan threshold is an exact scan of them, a wider one a filtered graph walk.
PAYLOAD_GRAPH_LINKS = frozenset({PAYLOAD_CLUSTER})

_ID_NAMESPACE = uuid.UUID("6f1d3a52-7c1e-4f0b-9a55-2b8e5d0c9e11")


def point_id_for(sha256_hex: str) -> str:
    """Deterministic point id from content: identical files map to one point."""
    return str(uuid.uuid5(_ID_NAMESPACE, sha256_hex))
