"""What is in the collection and how simimg is configured, for `status` and the UI."""

from __future__ import annotations

from typing import Any

from service.config import Settings
from service.errors import ImageDecodeError
from service.locations import locations_of
from service.store.base import PointFilter, VectorStore
from service.store.schema import PAYLOAD_LOCATIONS, SPACES


def collection_status(settings: Settings, store: VectorStore) -> dict[str, Any]:
    """Counts per vector space and clustering state, plus the configuration."""
    from service.autoencoder.files import current_model_info
    from service.clustering_runs import current_run
    from service.embedders.mobilenet import mobilenet_model_info

    points = store.count()
    run = current_run(settings)
    vectors = {space: store.count(PointFilter(has_vector=space)) for space in SPACES}
    return {
        "points": points,
        "vectors": vectors,
        "indexed_vectors": min(store.indexed_vectors(), sum(vectors.values())),
        "unlabelled": store.count(PointFilter(unlabelled=True)) if run else points,
        "clustering": run,
        "mobilenet": mobilenet_model_info(settings),
        "autoencoder": current_model_info(settings),
        "store": store.name,
        "collection": settings.collection,
        "schema_version": store.schema_version(),
        "files": file_status(store),
        "config": settings.describe(),
    }


def file_status(store: VectorStore) -> dict[str, Any]:
    """Locations per ingested root, and how many of them name a file that is gone.

    Missing files stay in the collection until the next sync of their root (their vectors
    are still valid); this is how many a sync would remove.
    """
    roots: dict[str, int] = {}
    locations = missing = 0
    for page in store.scroll(batch_size=1024, with_payload=[PAYLOAD_LOCATIONS]):
        for record in page:
            for loc in locations_of(record.payload):
                locations += 1
                roots[loc.root] = roots.get(loc.root, 0) + 1
                try:
                    present = loc.file.is_file()
                except ImageDecodeError:  # an unsafe stored path names no file
                    present = False
                missing += not present
    return {"locations": locations, "missing": missing, "roots": dict(sorted(roots.items()))}
