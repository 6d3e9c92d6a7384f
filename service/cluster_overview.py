"""One card per cluster: its size, name and most representative images.

A cluster's representatives are its medoid and the images nearest it (cosine, ``mobilenet``
vectors). With unit vectors the summed similarity of an image to its whole cluster is
``x . sum(cluster)``, so the medoid is found exactly with one matrix-vector product. The
noise points get a card too (their "medoid" is just the most typical noise image).

Computing the cards reads every labelled vector, so they are cached in the data dir
(``<collection>.cluster_cards.json``, atomic) per clustering run and number of labelled
points, and recomputed only when either changes. Names are not cached: they come from
:mod:`service.cluster_names` on every call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from service.atomic import read_json, write_json_atomic
from service.cluster_names import cluster_names
from service.clustering_runs import current_run
from service.config import Settings
from service.store.base import PointFilter, VectorStore
from service.store.schema import PAYLOAD_CLUSTER, VECTOR_MOBILENET

REPRESENTATIVES = 6
NOISE = -1
_PAGE = 2048


@dataclass(frozen=True)
class ClusterCard:
    """A cluster (``-1`` = noise) with its size, name and representative point ids."""

    cluster: int
    size: int
    representatives: list[str]
    name: str | None = None

    @property
    def title(self) -> str:
        if self.cluster == NOISE:
            return "Noise (in no cluster)"
        return f"Cluster {self.cluster}" + (f" · {self.name}" if self.name else "")


def _cache_path(settings: Settings) -> Path:
    return settings.state_dir / f"{settings.collection}.cluster_cards.json"


def cluster_cards(settings: Settings, store: VectorStore,
                  representatives: int = REPRESENTATIVES) -> list[ClusterCard]:
    """Every cluster of the current labelling, largest first, noise last."""
    run = current_run(settings) or {}
    labelled = store.count() - store.count(PointFilter(unlabelled=True))
    key = {"run_id": run.get("run_id"), "labelled": labelled, "k": representatives}
    cached = read_json(_cache_path(settings))
    if cached and cached.get("key") == key:
        cards = [ClusterCard(**item) for item in cached["cards"]]
    else:
        cards = compute_cards(store, representatives)
        write_json_atomic(_cache_path(settings),
                          {"key": key, "cards": [asdict(card) for card in cards]})
    names = cluster_names(settings)
    return [ClusterCard(c.cluster, c.size, c.representatives, names.get(c.cluster))
            for c in cards]


def compute_cards(store: VectorStore, representatives: int = REPRESENTATIVES
                  ) -> list[ClusterCard]:
    """The cards from the stored vectors (no cache): one pass over the labelled points."""
    ids: list[str] = []
    labels: list[int] = []
    rows: list[np.ndarray] = []
    where = PointFilter(has_vector=VECTOR_MOBILENET)
    for page in store.scroll(_PAGE, with_vectors=[VECTOR_MOBILENET], where=where,
                             with_payload=[PAYLOAD_CLUSTER]):
        for record in page:
            label = record.payload.get(PAYLOAD_CLUSTER)
            if label is None:
                continue
            ids.append(record.id)
            labels.append(int(label))
            rows.append(record.vectors[VECTOR_MOBILENET].astype(np.float16))
    if not ids:
        return []
    vectors = np.vstack(rows)
    del rows
    label_array = np.asarray(labels)
    cards = []
    for label in np.unique(label_array):
        members = np.flatnonzero(label_array == label)
        chosen = representatives_of(vectors[members].astype(np.float32), representatives)
        cards.append(ClusterCard(int(label), int(members.size),
                                 [ids[members[i]] for i in chosen]))
    cards.sort(key=lambda c: (c.cluster == NOISE, -c.size, c.cluster))
    return cards


def representatives_of(vectors: np.ndarray, count: int) -> list[int]:
    """Row indices of the medoid (by cosine) and the ``count - 1`` rows nearest it."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    medoid = int(np.argmax(unit @ unit.sum(axis=0)))
    similarity = unit @ unit[medoid]
    similarity[medoid] = np.inf  # first, whatever rounding does
    order = np.argsort(-similarity, kind="stable")
    return [int(i) for i in order[:count]]
