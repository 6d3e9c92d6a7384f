"""The collection schema: a stable contract for anyone querying Qdrant directly.

Documented in docs/schema.md. Changing a name or type here is a breaking change.
"""

from __future__ import annotations

import uuid

SCHEMA_VERSION = 1

VECTOR_MOBILENET = "mobilenet"
VECTOR_AUTOENCODER = "autoencoder"
SPACES = (VECTOR_MOBILENET, VECTOR_AUTOENCODER)
MOBILENET_DIM = 1280

# Payload keys, with the Qdrant type each holds.
PAYLOAD_PATH = "path"  # keyword: path relative to the ingested root, POSIX separators
PAYLOAD_ROOT = "root"  # keyword: absolute path of the ingested root folder
PAYLOAD_SHA256 = "sha256"  # keyword: hex SHA-256 of the file's bytes
PAYLOAD_WIDTH = "width"  # integer: pixels, after EXIF orientation
PAYLOAD_HEIGHT = "height"  # integer
PAYLOAD_FORMAT = "format"  # keyword: PIL format name, e.g. "JPEG"
PAYLOAD_FILE_SIZE = "file_size"  # integer: bytes
PAYLOAD_INGESTED_AT = "ingested_at"  # keyword: ISO-8601 UTC timestamp
PAYLOAD_CLUSTER = "cluster"  # integer: DBSCAN label, -1 noise; absent until clustered
PAYLOAD_AE_MODEL = "autoencoder_model"  # keyword: id of the model that made the vector

# Payload indexes created with the collection: key -> Qdrant schema type name.
PAYLOAD_INDEXES = {
    PAYLOAD_CLUSTER: "integer",
    PAYLOAD_SHA256: "keyword",
    PAYLOAD_PATH: "keyword",
    PAYLOAD_AE_MODEL: "keyword",
}

_ID_NAMESPACE = uuid.UUID("6f1d3a52-7c1e-4f0b-9a55-2b8e5d0c9e11")


def point_id_for(sha256_hex: str) -> str:
    """Deterministic point id from content: identical files map to one point."""
    return str(uuid.uuid5(_ID_NAMESPACE, sha256_hex))
