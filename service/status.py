"""What is in the collection and how simimg is configured, for `status` and the UI."""

from __future__ import annotations

from typing import Any

from service.config import Settings
from service.store.base import PointFilter, VectorStore
from service.store.schema import SCHEMA_VERSION, SPACES


def collection_status(settings: Settings, store: VectorStore) -> dict[str, Any]:
    """Counts per vector space and clustering state, plus the configuration."""
    from service.autoencoder.files import current_model_info
    from service.clustering_runs import current_run
    from service.embedders.mobilenet import mobilenet_model_info

    points = store.count()
    run = current_run(settings)
    return {
        "points": points,
        "vectors": {space: store.count(PointFilter(has_vector=space)) for space in SPACES},
        "unlabelled": store.count(PointFilter(unlabelled=True)) if run else points,
        "clustering": run,
        "mobilenet": mobilenet_model_info(settings),
        "autoencoder": current_model_info(settings),
        "store": store.name,
        "collection": settings.collection,
        "schema_version": SCHEMA_VERSION,
        "config": settings.describe(),
    }
