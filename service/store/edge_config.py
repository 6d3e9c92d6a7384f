"""qdrant-edge's collection and search parameters from simimg's settings, and its filter
conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import qdrant_edge as qe

from service.config import Settings
from service.store.records import INT8_OVERSAMPLING, Condition

SCHEMA_TYPES = {
    "integer": qe.PayloadSchemaType.Integer,
    "keyword": qe.PayloadSchemaType.Keyword,
    "datetime": qe.PayloadSchemaType.Datetime,
    "geo": qe.PayloadSchemaType.Geo,
}
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
