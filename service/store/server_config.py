"""qdrant-client's collection parameters, search parameters and filter conditions from
simimg's settings (the server backend's counterpart of :mod:`service.store.edge_config`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from qdrant_client import models as qm

from service.config import Settings
from service.store.records import INT8_OVERSAMPLING, Condition


def collection_params(s: Settings, dims: Mapping[str, int]) -> dict[str, Any]:
    """Vectors, HNSW and quantization of a new collection, as ``create_collection`` kwargs."""
    quantization = (
        qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(
                type=qm.ScalarType.INT8, quantile=0.99, always_ram=True
            )
        )
        if s.quantization == "int8"
        else None
    )
    datatype = qm.Datatype(s.vector_datatype)
    vectors = {
        space: qm.VectorParams(
            size=dim, distance=qm.Distance.COSINE, datatype=datatype,
            on_disk=s.vectors_on_disk or None,
        )
        for space, dim in dims.items()
    }
    return {
        "vectors_config": vectors,
        "hnsw_config": qm.HnswConfigDiff(
            m=s.hnsw_m, ef_construct=s.hnsw_ef_construct, full_scan_threshold=s.hnsw_full_scan_kb,
        ),
        "quantization_config": quantization,
        "shard_number": s.shard_number,
        "replication_factor": s.replication_factor,
    }


def search_params(
    s: Settings, exact: bool, hnsw_ef: int | None = None, rescore: bool = True
) -> qm.SearchParams:
    """A full scan when ``exact``; else the index at ``hnsw_ef`` (default: the setting), int8
    copies rescored from the originals unless not ``rescore``."""
    if exact:
        return qm.SearchParams(exact=True)
    quantized = qm.QuantizationSearchParams(rescore=rescore, oversampling=INT8_OVERSAMPLING)
    int8 = quantized if s.quantization == "int8" else None
    return qm.SearchParams(hnsw_ef=hnsw_ef or s.hnsw_ef, quantization=int8)


def native_condition(condition: Condition) -> Any:
    """One backend-neutral :class:`Condition` as a qdrant-client condition."""
    if condition.kind == "match":
        return qm.FieldCondition(key=condition.key, match=qm.MatchValue(value=condition.value))
    if condition.kind == "empty":
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=condition.key))
    if condition.kind == "has_vector":
        return qm.HasVectorCondition(has_vector=condition.key)
    if condition.kind == "text":
        return qm.FieldCondition(key=condition.key, match=qm.MatchText(text=condition.value))
    if condition.kind == "datetime_range":
        gte, lt = condition.value
        return qm.FieldCondition(key=condition.key, range=qm.DatetimeRange(gte=gte, lt=lt))
    if condition.kind == "has_id":
        return qm.HasIdCondition(has_id=list(condition.value))
    raise ValueError(f"unknown condition kind {condition.kind!r}")


def plain(value: Any) -> Any:
    """Payload with numpy scalars/arrays turned into JSON types (the HTTP client needs that)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value

