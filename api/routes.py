"""REST API v1: search, stored points and their thumbnails, status, clusters, jobs.

Handlers are plain functions (FastAPI runs them on its thread pool) calling the same core
functions as the CLI: ``Searcher.search`` / ``search_by_id``, ``collection_status``,
``list_clusters``, and the job kinds of :mod:`api.job_kinds`.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from api import API_PREFIX
from api.filter_params import form_filters, query_filters
from api.jobs import Job
from api.security import TRUSTED_SCOPE_KEY
from api.service import SimimgService
from service.cluster_names import resolve_cluster
from service.errors import ImageTooLargeError, PointNotFoundError
from service.filters import NO_FILTERS, SearchFilters
from service.search import FUSED, MAX_K, SearchResult
from service.store.schema import SPACES
from service.thumbnails import DEFAULT_THUMBNAIL_SIZE

PREFIX = API_PREFIX
router = APIRouter(prefix=PREFIX)
SPACE_HELP = f"Vector space: {', '.join((*SPACES, FUSED))}"
CLUSTER_HELP = "Only this cluster: its number (-1 = noise) or the name given to it"


class Result(BaseModel):
    """One similar image: the same object as ``simimg-admin search --json`` prints."""

    id: str
    score: float
    path: str
    root: str
    cluster: int | None
    locations: list[dict[str, str]] = Field(
        description="every place this image's content lives: {root, path}"
    )
    payload: dict[str, Any]
    cluster_name: str | None = Field(None, description="the name given to the cluster, if any")


class SearchResponse(BaseModel):
    results: list[Result]


class PointResponse(BaseModel):
    id: str
    payload: dict[str, Any]
    vectors: list[str] = Field(description="Vector spaces this point has")


class ClusterItem(BaseModel):
    cluster: int
    size: int
    examples: list[str]
    name: str | None = None


class ClustersResponse(BaseModel):
    run: dict[str, Any] | None
    clusters: list[ClusterItem]


class JobProgress(BaseModel):
    done: int = 0
    total: int | None = None
    stage: str | None = None


class JobResponse(BaseModel):
    id: str
    kind: str
    params: dict[str, Any]
    state: str = Field(description="queued, running, done, failed, cancelled or interrupted")
    progress: JobProgress
    result: Any = None
    error: str | None = None
    messages: list[str] = []
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class JobsResponse(BaseModel):
    jobs: list[JobResponse]


class JobRequest(BaseModel):
    """``kind`` plus that kind's options: ingest ``folder`` (absolute path, ``shard``);
    train ``epochs``, ``image_size``, ``batch_size``, ``patience``, ``seed``, ``folder``;
    cluster ``space``, ``eps``, ``min_samples``, ``algorithm``, ``dims``."""

    model_config = {"extra": "allow", "json_schema_extra": {
        "examples": [{"kind": "ingest", "folder": "/photos/2024"},
                     {"kind": "cluster", "space": "mobilenet", "eps": "auto"}]}}

    kind: str = Field(description="ingest, train or cluster")


def _service(request: Request) -> SimimgService:
    return request.app.state.service


def _point_id(point_id: str) -> str:
    """Point ids are UUIDs; anything else names no stored image (404, not a store error)."""
    try:
        uuid.UUID(point_id)
    except ValueError:
        raise PointNotFoundError(f"no image with id {point_id} in the collection") from None
    return point_id


def _results(results: list[SearchResult]) -> SearchResponse:
    return SearchResponse(results=[Result(**r.to_json()) for r in results])


LIKE_HELP = "Stored image id to find more like (repeat for several)"
UNLIKE_HELP = "Stored image id to find less like (repeat for several)"
MIN_SCORE_HELP = ("Hide results below this cosine similarity; fused: each space's ranking is "
                  "cut before fusion")


@router.post("/search", response_model=SearchResponse,
             summary="Search with an uploaded image and/or liked and unliked stored images")
def search(
    request: Request,
    image: Annotated[UploadFile | None, File(description="The query image file (optional "
                                                         "when `like` is given)")] = None,
    k: Annotated[int, Form(ge=1, le=MAX_K)] = 6,
    space: Annotated[str, Form(description=SPACE_HELP)] = "mobilenet",
    cluster: Annotated[str | None, Form(description=CLUSTER_HELP)] = None,
    min_score: Annotated[float | None, Form(description=MIN_SCORE_HELP)] = None,
    like: Annotated[list[str] | None, Form(description=LIKE_HELP)] = None,
    unlike: Annotated[list[str] | None, Form(description=UNLIKE_HELP)] = None,
    filters: Annotated[SearchFilters, Depends(form_filters)] = NO_FILTERS,
    exact: Annotated[bool, Form(description="Full scan instead of the vector index")] = False,
) -> SearchResponse:
    service = _service(request)
    data, source = None, None
    if image is not None:
        limit = service.settings.max_file_bytes
        data = image.file.read(limit + 1)
        source = image.filename or "upload"
        if len(data) > limit:
            raise ImageTooLargeError(
                f"{source}: upload is over the limit of {limit:,} bytes (SIMIMG_MAX_FILE_BYTES)"
            )
    label = resolve_cluster(service.settings, cluster)
    return _results(service.searcher.search(
        data, space, k, label, source, filters, like=like or (), unlike=unlike or (),
        min_score=min_score, exact=exact,
    ))


@router.get("/points/{point_id}/similar", response_model=SearchResponse,
            summary="Search with a stored image")
def similar(
    request: Request,
    point_id: str,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 6,
    space: Annotated[str, Query(description=SPACE_HELP)] = "mobilenet",
    cluster: Annotated[str | None, Query(description=CLUSTER_HELP)] = None,
    min_score: Annotated[float | None, Query(description=MIN_SCORE_HELP)] = None,
    like: Annotated[list[str] | None, Query(description=LIKE_HELP)] = None,
    unlike: Annotated[list[str] | None, Query(description=UNLIKE_HELP)] = None,
    filters: Annotated[SearchFilters, Depends(query_filters)] = NO_FILTERS,
) -> SearchResponse:
    service = _service(request)
    label = resolve_cluster(service.settings, cluster)
    return _results(service.searcher.search_by_id(
        _point_id(point_id), space, k, label, filters, like=like or (), unlike=unlike or (),
        min_score=min_score,
    ))


@router.get("/points/{point_id}", response_model=PointResponse, summary="A stored point")
def point(request: Request, point_id: str) -> PointResponse:
    records = _service(request).store.retrieve([_point_id(point_id)], with_vectors=True)
    if not records:
        raise PointNotFoundError(f"no image with id {point_id} in the collection")
    record = records[0]
    return PointResponse(id=record.id, payload=record.payload, vectors=sorted(record.vectors))


@router.get(
    "/points/{point_id}/thumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified"}},
    summary="JPEG thumbnail of a stored image",
)
def thumbnail(
    request: Request,
    point_id: str,
    size: Annotated[int, Query(description="Longest side: 128, 320 or 640")] = (
        DEFAULT_THUMBNAIL_SIZE
    ),
) -> Response:
    service = _service(request)
    thumb = service.thumbnails.get(_point_id(point_id), size)
    headers = {"ETag": thumb.etag, "Cache-Control": cache_control(service)}
    if thumb.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(thumb.path, media_type=thumb.media_type, headers=headers)


def cache_control(service: SimimgService) -> str:
    """Thumbnails never change (content-addressed ids): cache them for good."""
    scope = "private" if service.settings.api_key else "public"
    return f"{scope}, max-age=31536000, immutable"


@router.get("/status", summary="The same object as `simimg-admin status --json`")
def status(request: Request) -> dict[str, Any]:
    from service.status import collection_status

    service = _service(request)
    return collection_status(service.settings, service.store)


@router.get("/clusters", response_model=ClustersResponse,
            summary="Clusters of the current labelling (as `simimg-admin clusters`)")
def clusters(
    request: Request, examples: Annotated[int, Query(ge=0, le=100)] = 3
) -> ClustersResponse:
    from service.cluster_labels import list_clusters
    from service.clustering_runs import current_run

    service = _service(request)
    listing = list_clusters(service.store, examples)
    return ClustersResponse(
        run=current_run(service.settings),
        clusters=[ClusterItem(cluster=i.cluster, size=i.size, examples=i.examples, name=i.name)
                  for i in listing],
    )


def _job(job: Job) -> JobResponse:
    return JobResponse(**job.to_json())


@router.post("/jobs", status_code=202, response_model=JobResponse,
             summary="Queue an ingest, train or cluster job")
def submit_job(request: Request, body: JobRequest) -> JobResponse:
    trusted = bool(request.scope.get(TRUSTED_SCOPE_KEY))
    return _job(_service(request).submit_job(body.model_dump(), trusted=trusted))


@router.get("/jobs", response_model=JobsResponse, summary="Every recorded job, newest first")
def list_jobs(request: Request) -> JobsResponse:
    return JobsResponse(jobs=[_job(job) for job in _service(request).jobs.list()])


@router.get("/jobs/{job_id}", response_model=JobResponse, summary="One job")
def get_job(request: Request, job_id: str) -> JobResponse:
    return _job(_service(request).jobs.get(job_id))


@router.delete("/jobs/{job_id}", response_model=JobResponse,
               summary="Cancel a queued or running job")
def cancel_job(request: Request, job_id: str) -> JobResponse:
    return _job(_service(request).jobs.cancel(job_id))


@router.get("/health", summary="Answers while the service runs")
def health() -> dict[str, bool]:
    return {"ok": True}


@router.get("/clusters/labels.csv", response_class=FileResponse,
            responses={200: {"content": {"text/csv": {}}}},
            summary="id,path,root,cluster of every point (as `clusters --export`)")
def labels_csv(request: Request) -> Response:
    from service.cluster_labels import export_labels

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "labels.csv"
        export_labels(_service(request).store, target)
        return Response(target.read_bytes(), media_type="text/csv")

@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                  include_in_schema=False)
def unknown(rest: str) -> None:
    raise HTTPException(404, f"no API endpoint {PREFIX}/{rest} for this method")
