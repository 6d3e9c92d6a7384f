"""REST API v1: images by payload alone (``/browse``) and counts per value (``/facets``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.filter_params import query_filters
from api.routes import PREFIX, SearchResponse, _results, _service
from service.browse import FACET_KEYS, browse, facet_counts
from service.filters import SearchFilters

router = APIRouter(prefix=PREFIX)
Filters = Annotated[SearchFilters, Depends(query_filters)]
Cluster = Annotated[int | None, Query(description="Only this cluster (-1 = noise)")]


class FacetCount(BaseModel):
    value: Any
    count: int


class FacetResponse(BaseModel):
    key: str
    counts: list[FacetCount]


@router.get("/browse", response_model=SearchResponse,
            summary="Images matching the filters, without a query image (as `browse`)")
def browse_images(
    request: Request,
    filters: Filters,
    cluster: Cluster = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> SearchResponse:
    return _results(browse(_service(request).store, filters, cluster, limit))


@router.get("/facets/{key}", response_model=FacetResponse,
            summary=f"Images per value of {', '.join(FACET_KEYS)} (as `facets KEY`)")
def facets(
    request: Request,
    key: str,
    filters: Filters,
    cluster: Cluster = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> FacetResponse:
    counts = facet_counts(_service(request).store, key, filters, cluster, limit)
    return FacetResponse(key=key, counts=[FacetCount(value=v, count=c) for v, c in counts])
