"""The search function behind the CLI and the UI: image in, ranked similar images out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import ConfigError, EmptyCollectionError, PointNotFoundError
from service.locations import locations_of, stored_file
from service.pipeline import EmbeddingPipeline, PreparedImage
from service.query_whitening import QueryWhitening, whitened_search
from service.store.base import Hit, PointFilter, VectorStore
from service.store.schema import (
    PAYLOAD_CLUSTER,
    PAYLOAD_PATH,
    PAYLOAD_ROOT,
    SPACES,
    VECTOR_AUTOENCODER,
    VECTOR_MOBILENET,
)

FUSED = "fused"
SEARCH_MODES = (*SPACES, FUSED)
# Reciprocal-rank-fusion constant (Cormack et al.; also Qdrant's default for RRF).
RRF_K = 60
MAX_K = 1000


@dataclass(frozen=True)
class SearchResult:
    """One similar image. ``score`` is cosine similarity (in the mobilenet space: of the
    whitened vectors, see service/query_whitening.py), or the RRF score in fused mode.

    ``root`` / ``path`` are the first location; ``locations`` lists every place the same
    content lives (``{"root", "path"}`` each).
    """

    id: str
    score: float
    path: str
    root: str
    cluster: int | None
    locations: list[dict[str, str]]
    payload: dict[str, Any]

    @property
    def file(self) -> Path:
        """A file with this content: the first location whose file exists."""
        return stored_file(self.payload)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Searcher:
    """Embeds queries with the shared pipeline and searches the store."""

    def __init__(self, store: VectorStore, pipeline: EmbeddingPipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        # The whitening file sits with the collection: the store's settings where it has them.
        self.whitening = QueryWhitening(getattr(store, "settings", pipeline.settings), store)

    def prepare(self, query: bytes | Path, source: str | None = None) -> PreparedImage:
        """Decode a query given as a file path or as raw bytes (an upload)."""
        if isinstance(query, Path):
            return self.pipeline.prepare_file(query, source)
        return self.pipeline.prepare(query, source or "upload")

    def search(
        self,
        query: bytes | Path | PreparedImage,
        space: str = "mobilenet",
        k: int = 6,
        cluster: int | None = None,
        source: str | None = None,
    ) -> list[SearchResult]:
        """Top-``k`` images most similar to ``query`` in ``space`` (or ``fused``).

        ``source`` names an upload in error messages (default: the path, or "upload").
        """
        spaces = self._spaces(space, k)
        prepared = query if isinstance(query, PreparedImage) else self.prepare(query, source)
        vectors = self.pipeline.embed([prepared], spaces)
        return self.search_vectors({name: vectors[name][0] for name in spaces}, k, cluster)

    def search_by_id(
        self, point_id: str, space: str = "mobilenet", k: int = 6, cluster: int | None = None
    ) -> list[SearchResult]:
        """Search with a stored point's own vectors (picking a query from the collection)."""
        spaces = self._spaces(space, k)
        records = self.store.retrieve([point_id], with_vectors=spaces)
        if not records:
            raise PointNotFoundError(f"no image with id {point_id} in the collection")
        stored = records[0].vectors
        missing = [name for name in spaces if name not in stored]
        if missing:
            raise ConfigError(f"image {point_id} has no {', '.join(missing)} vector yet")
        return self.search_vectors({name: stored[name] for name in spaces}, k, cluster)

    def search_vectors(
        self, vectors: dict[str, np.ndarray], k: int, cluster: int | None = None
    ) -> list[SearchResult]:
        """Search each given space and fuse the rankings when there is more than one."""
        rankings = []
        for space, vector in vectors.items():
            where = PointFilter(
                cluster=cluster, autoencoder_model=self._autoencoder_model(space)
            )
            depth = k if len(vectors) == 1 else min(MAX_K, max(4 * k, 50))
            rankings.append(self._search_space(vector, space, depth, where))
        hits = rankings[0] if len(rankings) == 1 else reciprocal_rank_fusion(rankings, k)
        # Counting on every query costs a scan; an empty result is the cheap signal.
        if not hits and self.store.count() == 0:
            raise EmptyCollectionError(
                "the collection is empty: run `simimg-admin ingest FOLDER` first"
            )
        return [_to_result(hit) for hit in hits[:k]]

    def _search_space(
        self, vector: np.ndarray, space: str, depth: int, where: PointFilter
    ) -> list[Hit]:
        whitening = (
            self.whitening.current(self.pipeline.model_id(space) or "")
            if space == VECTOR_MOBILENET else None
        )
        if whitening is None:
            return self.store.search(vector, space, depth, where)
        return whitened_search(self.store, whitening, vector, depth, where)

    def _spaces(self, space: str, k: int) -> list[str]:
        """Validate the arguments; the vector spaces ``space`` searches, each ready to use.

        Raises ModelNotTrainedError for an autoencoder space before any model is trained.
        """
        _check_args(space, k)
        spaces = list(SPACES) if space == FUSED else [space]
        if VECTOR_AUTOENCODER in spaces:
            self.pipeline.refresh()  # follow a model switched by another process
        for name in spaces:
            self.pipeline.embedder(name)
        return spaces

    def _autoencoder_model(self, space: str) -> str | None:
        # Only vectors made by the current autoencoder are comparable with the query.
        return self.pipeline.model_id(space) if space == VECTOR_AUTOENCODER else None


def reciprocal_rank_fusion(rankings: list[list[Hit]], k: int) -> list[Hit]:
    """Fuse ranked lists: score = sum of 1 / (RRF_K + rank) over the lists a point is in."""
    scores: dict[str, float] = {}
    payloads: dict[str, dict[str, Any]] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
            payloads.setdefault(hit.id, hit.payload)
    ordered = sorted(scores, key=lambda pid: (-scores[pid], pid))[:k]
    return [Hit(id=pid, score=scores[pid], payload=payloads[pid]) for pid in ordered]


def _check_args(space: str, k: int) -> None:
    if space not in SEARCH_MODES:
        raise ConfigError(f"--space must be one of {', '.join(SEARCH_MODES)}, got {space!r}")
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"--k must be between 1 and {MAX_K}, got {k}")


def _to_result(hit: Hit) -> SearchResult:
    payload = hit.payload
    cluster = payload.get(PAYLOAD_CLUSTER)
    return SearchResult(
        id=hit.id,
        score=float(hit.score),
        path=str(payload.get(PAYLOAD_PATH, "")),
        root=str(payload.get(PAYLOAD_ROOT, "")),
        cluster=int(cluster) if cluster is not None else None,
        locations=[{"root": loc.root, "path": loc.path} for loc in locations_of(payload)],
        payload=payload,
    )
