"""qdrant-edge's collection and search parameters from simimg's settings, and its filter
conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import qdrant_edge as qe

from service.config import Settings
from service.store.records import INT8_OVERSAMPLING, Condition
from service.store.schema import PAYLOAD_GRAPH_LINKS

_INDEX_PARAMS = {
    # integers (cluster, duplicate group) are matched, never compared: no range index, whose
    # overlapping range blocks would get HNSW links too
    "integer": lambda links: qe.IntegerIndexParams(lookup=True, range=False, enable_hnsw=links),
    "keyword": lambda links: qe.KeywordIndexParams(enable_hnsw=links),
    "datetime": lambda links: qe.DatetimeIndexParams(enable_hnsw=links),
    "geo": lambda links: qe.GeoIndexParams(enable_hnsw=links),
}


def field_index(key: str, kind: str) -> Any:
    """The payload index of ``key`` (schema type ``kind``), with HNSW links only for the
    fields of :data:`~service.store.schema.PAYLOAD_GRAPH_LINKS`."""
    return _INDEX_PARAMS[kind](key in PAYLOAD_GRAPH_LINKS)


_DATATYPES = {
    "float16": qe.VectorStorageDatatype.Float16,
    "float32": qe.VectorStorageDatatype.Float32,
}


def collection_config(s: Settings, dims: Mapping[str, int]) -> qe.EdgeConfig:
    """Vectors, HNSW and quantization of a new shard (fixed from then on)."""
    memory = qe.Memory.Cold if s.vectors_on_disk else None  # Cold: memory-mapped from disk
    vectors = {
        space: qe.EdgeVectorParams(dim, distance=qe.Distance.Cosine,
                                   datatype=_DATATYPES[s.vector_datatype], memory=memory)
        for space, dim in dims.items()
    }
    quantization = (
        qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
        if s.quantization == "int8"
        else None
    )
    return qe.EdgeConfig(
        vectors=vectors,
        hnsw_config=qe.HnswIndexConfig(
            m=s.hnsw_m, ef_construct=s.hnsw_ef_construct, full_scan_threshold=s.hnsw_full_scan_kb,
        ),
        quantization_config=quantization,
        # segments the planner would scan in full anyway are not worth indexing
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=s.hnsw_full_scan_kb),
    )


def search_params(
    s: Settings, exact: bool, hnsw_ef: int | None = None, rescore: bool = True
) -> qe.SearchParams:
    """A full scan when ``exact``; else the index at ``hnsw_ef`` (default: the setting), int8
    copies rescored from the originals unless not ``rescore``."""
    if exact:
        return qe.SearchParams(exact=True)
    int8 = (
        qe.QuantizationSearchParams(rescore=rescore, oversampling=INT8_OVERSAMPLING)
        if s.quantization == "int8"
        else None
    )
    return qe.SearchParams(hnsw_ef=hnsw_ef or s.hnsw_ef, quantization=int8)


def native_condition(condition: Condition) -> Any:
    """One backend-neutral :class:`Condition` as a qdrant-edge condition."""
    if condition.kind == "match":
        return qe.FieldCondition(condition.key, match=qe.MatchValue(condition.value))
    if condition.kind == "empty":
        return qe.IsEmptyCondition(condition.key)
    if condition.kind == "has_vector":
        return qe.HasVectorCondition(condition.key)
    if condition.kind == "text":
        return qe.FieldCondition(condition.key, match=qe.MatchText(condition.value))
    if condition.kind == "datetime_range":
        gte, lt = condition.value
        return qe.FieldCondition(condition.key, range=qe.RangeDateTime(gte=gte, lt=lt))
    if condition.kind == "has_id":
        return qe.HasIdCondition(set(condition.value))
    raise ValueError(f"unknown condition kind {condition.kind!r}")
