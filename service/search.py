"""The search function behind the CLI and the UI: image in, ranked similar images out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import ConfigError, EmptyCollectionError
from service.filters import NO_FILTERS, SearchFilters
from service.locations import locations_of, stored_file
from service.pipeline import EmbeddingPipeline, PreparedImage
from service.query_whitening import QueryWhitening, whitened_recommend, whitened_search
from service.steering import (
    NO_EXAMPLES,
    Examples,
    at_least,
    check_min_score,
    load_examples,
    stored_vectors,
)
from service.store.base import Hit, PointFilter, VectorStore
from service.store.schema import (
    PAYLOAD_CLUSTER,
    PAYLOAD_CLUSTER_NAME,
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
    whitened vectors, see service/query_whitening.py; to the closest positive example in a
    steered search, see :mod:`service.store.recommend`), or the RRF score in fused mode.

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
    cluster_name: str | None = None  # the name given to ``cluster``, if any

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

    def prepare(
        self, query: bytes | Path, source: str | None = None, spaces: Sequence[str] | None = None
    ) -> PreparedImage:
        """Decode a query given as a file path or as raw bytes (an upload), preprocessed for
        ``spaces`` (default: every loaded space)."""
        if isinstance(query, Path):
            return self.pipeline.prepare_file(query, source, spaces)
        return self.pipeline.prepare(query, source or "upload", spaces=spaces)

    def search(
        self,
        query: bytes | Path | PreparedImage | None,
        space: str = "mobilenet",
        k: int = 6,
        cluster: int | None = None,
        source: str | None = None,
        filters: SearchFilters = NO_FILTERS,
        like: Sequence[str] = (),
        unlike: Sequence[str] = (),
        min_score: float | None = None,
        exact: bool = False,
    ) -> list[SearchResult]:
        """Top-``k`` images most similar to ``query`` in ``space`` (or ``fused``).

        ``like`` / ``unlike``: stored images to find more / fewer of (:mod:`service.steering`);
        ``query`` may be None when ``like`` is given. ``min_score`` hides results below it.
        ``source`` names an upload in error messages (default: the path, or "upload").
        ``exact``: a full scan instead of the vector index (to check the index's results).
        """
        spaces = self._spaces(space, k, min_score)
        examples = self._examples(like, unlike, spaces)
        if query is None:
            if not examples.positives.get(spaces[0]):
                raise ConfigError("give a query image or at least one --like image")
            return self._ranked({}, spaces, k, cluster, examples, min_score, filters)
        prepared = (query if isinstance(query, PreparedImage)
                    else self.prepare(query, source, spaces))
        vectors = self.pipeline.embed([prepared], spaces)
        queries = {name: vectors[name][0] for name in spaces}
        return self._ranked(queries, spaces, k, cluster, examples, min_score, filters, exact)

    def search_by_id(
        self,
        point_id: str,
        space: str = "mobilenet",
        k: int = 6,
        cluster: int | None = None,
        filters: SearchFilters = NO_FILTERS,
        like: Sequence[str] = (),
        unlike: Sequence[str] = (),
        min_score: float | None = None,
    ) -> list[SearchResult]:
        """Search with a stored point's own vectors (picking a query from the collection)."""
        spaces = self._spaces(space, k, min_score)
        examples = self._examples(like, unlike, spaces)
        stored = stored_vectors(self.store, [point_id], spaces, self._autoencoder_model())
        return self._ranked(stored[point_id], spaces, k, cluster, examples, min_score, filters)

    def search_vectors(
        self, vectors: dict[str, np.ndarray], k: int, cluster: int | None = None,
        filters: SearchFilters = NO_FILTERS, min_score: float | None = None,
        exact: bool = False,
    ) -> list[SearchResult]:
        """Search each given space and fuse the rankings when there is more than one."""
        return self._ranked(vectors, list(vectors), k, cluster, NO_EXAMPLES, min_score, filters,
                            exact)

    def _ranked(
        self,
        queries: dict[str, np.ndarray],
        spaces: list[str],
        k: int,
        cluster: int | None,
        examples: Examples,
        min_score: float | None,
        filters: SearchFilters = NO_FILTERS,
        exact: bool = False,
    ) -> list[SearchResult]:
        """One ranking per space (nearest to the query, or recommend when steered) within
        ``filters``, each cut at ``min_score``, fused when there is more than one."""
        rankings = []
        for space in spaces:
            where = filters.point_filter(
                cluster=cluster, autoencoder_model=self._autoencoder_model(space),
                exclude_ids=examples.ids,
            )
            depth = k if len(spaces) == 1 else min(MAX_K, max(4 * k, 50))
            positives = [queries[space]] if space in queries else []
            positives += examples.positives.get(space, [])
            negatives = examples.negatives.get(space, [])
            hits = self._search_space(positives, negatives, space, depth, where, exact)
            rankings.append(at_least(hits, min_score))
        hits = rankings[0] if len(rankings) == 1 else reciprocal_rank_fusion(rankings, k)
        # Counting on every query costs a scan; an empty result is the cheap signal.
        if not hits and self.store.count() == 0:
            raise EmptyCollectionError(
                "the collection is empty: run `simimg-admin ingest FOLDER` first"
            )
        return [result_of(hit) for hit in hits[:k]]

    def _examples(self, like: Sequence[str], unlike: Sequence[str], spaces: list[str]) -> Examples:
        return load_examples(self.store, like, unlike, spaces, self._autoencoder_model())

    def _search_space(
        self, positives: list[np.ndarray], negatives: list[np.ndarray], space: str,
        depth: int, where: PointFilter, exact: bool,
    ) -> list[Hit]:
        """Nearest to the one positive example, or Qdrant's recommend query for several or
        with negatives; in the mobilenet space by the collection's whitened cosine
        (:mod:`service.query_whitening`) once one is learned."""
        whitening = (
            self.whitening.current(self.pipeline.model_id(space) or "")
            if space == VECTOR_MOBILENET else None
        )
        plain = len(positives) == 1 and not negatives
        if whitening is None and plain:
            return self.store.search(positives[0], space, depth, where, exact)
        if whitening is None:
            return self.store.recommend(positives, negatives, space, depth, where)
        if plain:
            return whitened_search(self.store, whitening, positives[0], depth, where, exact)
        return whitened_recommend(self.store, whitening, positives, negatives, depth, where)

    def _spaces(self, space: str, k: int, min_score: float | None = None) -> list[str]:
        """Validate the arguments; the vector spaces ``space`` searches, each ready to use.

        Raises ModelNotTrainedError for an autoencoder space before any model is trained.
        """
        _check_args(space, k)
        check_min_score(min_score)
        spaces = list(SPACES) if space == FUSED else [space]
        if VECTOR_AUTOENCODER in spaces:
            self.pipeline.refresh()  # follow a model switched by another process
        for name in spaces:
            self.pipeline.embedder(name)
        return spaces

    def _autoencoder_model(self, space: str = VECTOR_AUTOENCODER) -> str | None:
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


def result_of(hit: Hit) -> SearchResult:
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
        cluster_name=payload.get(PAYLOAD_CLUSTER_NAME),
    )
