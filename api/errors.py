"""Every error the API returns is JSON ``{"error": KIND, "message": ONE_LINE}`` with a status
that fits: 400 bad argument, 401 key, 403 folder not allowed, 404 unknown id, 409 conflict
(job already queued, collection empty, model not trained), 413 too large, 415 not an image."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.jobs import JobConflictError
from api.service import ForbiddenFolderError
from service.errors import (
    EmptyCollectionError,
    ImageDecodeError,
    ImageTooLargeError,
    ModelNotTrainedError,
    PointNotFoundError,
    SimimgError,
    StoreError,
    StoreInUseError,
)

log = logging.getLogger("simimg.api")

# Most specific first: the first class the error is an instance of decides.
STATUS_OF: list[tuple[type[SimimgError], int, str]] = [
    (PointNotFoundError, 404, "not_found"),
    (ImageTooLargeError, 413, "too_large"),
    (ImageDecodeError, 415, "not_an_image"),
    (ForbiddenFolderError, 403, "folder_not_allowed"),
    (JobConflictError, 409, "conflict"),
    (EmptyCollectionError, 409, "collection_empty"),
    (ModelNotTrainedError, 409, "model_not_trained"),
    (StoreInUseError, 503, "store_in_use"),
    (StoreError, 500, "store_error"),
    (SimimgError, 400, "bad_request"),
]


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SimimgError)
    async def simimg_error(request: Request, exc: SimimgError) -> JSONResponse:
        for cls, status, kind in STATUS_OF:
            if isinstance(exc, cls):
                return error_response(status, kind, str(exc))
        return error_response(400, "bad_request", str(exc))  # pragma: no cover

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where}: {error.get('msg')}")
        return error_response(400, "bad_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error",
                              f"{type(exc).__name__}: {exc}".splitlines()[0])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed", 411: "length_required",
                 413: "too_large"}
        return error_response(exc.status_code, kinds.get(exc.status_code, "http_error"),
                              str(exc.detail))
