"""One ASGI app: the REST API under ``/api/v1`` (docs at ``/api/v1/docs``) and the page at ``/``."""

from __future__ import annotations

from fastapi import FastAPI

import ui  # noqa: F401  (disables Gradio analytics before gradio is imported)
from api.browse_routes import router as browse_router
from api.errors import install_error_handlers
from api.routes import PREFIX, cache_control, router
from api.security import ASGIApp, KeyMiddleware, Receive, Scope, Send
from api.service import SimimgService

# Multipart framing and the form fields around an upload of max_file_bytes.
UPLOAD_OVERHEAD = 64 * 1024


def create_app(service: SimimgService, with_page: bool = True) -> FastAPI:
    """The service's app; ``with_page=False`` leaves out the Gradio page."""
    app = FastAPI(
        title="simimg",
        version="1",
        description="Image similarity search over your collection. Errors are JSON "
        '`{"error": KIND, "message": TEXT}`. With SIMIMG_API_KEY set, send '
        "`Authorization: Bearer KEY`.",
        docs_url=f"{PREFIX}/docs",
        openapi_url=f"{PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    app.include_router(browse_router)  # before router: its last route catches unknown paths
    app.include_router(router)
    if with_page:
        from ui.app import build_app, mount

        page = build_app(service.searcher, service.settings, service.thumbnails)
        app = mount(app, page, service.settings)
    app.add_middleware(
        PageThumbnailHeaders, marker=str(service.thumbnails.root), value=cache_control(service)
    )
    app.add_middleware(UploadLimit, limit=service.settings.max_file_bytes + UPLOAD_OVERHEAD)
    app.add_middleware(KeyMiddleware, api_key=service.settings.api_key,
                       local_token=service.token)
    return app


class UploadLimit:
    """Refuse an API upload larger than the file limit before reading its body (413)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith(
            PREFIX
        ):
            headers = dict(scope.get("headers", []))
            length = headers.get(b"content-length")
            if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
                await _json(send, 411, "length_required",
                            "send the upload with a Content-Length header")
                return
            if length is not None and not length.isdigit():
                await _json(send, 400, "bad_request", "Content-Length is not a number")
                return
            if length is not None and int(length) > self.limit:
                await _json(send, 413, "too_large",
                            f"request of {int(length):,} bytes is over the limit of "
                            f"{self.limit:,} (SIMIMG_MAX_FILE_BYTES plus form overhead)")
                return
        await self.app(scope, receive, send)


class PageThumbnailHeaders:
    """The page's images are the same immutable cache files: let browsers keep them."""

    def __init__(self, app: ASGIApp, marker: str, value: str) -> None:
        self.app = app
        self.marker = marker
        self.value = value.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if "/file=" not in path or self.marker not in path:
            await self.app(scope, receive, send)
            return

        async def send_with_cache(message: dict) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"cache-control"]
                message["headers"] = [*headers, (b"cache-control", self.value)]
            await send(message)

        await self.app(scope, receive, send_with_cache)


async def _json(send: Send, status: int, kind: str, message: str) -> None:
    import json

    body = json.dumps({"error": kind, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
