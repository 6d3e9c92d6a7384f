"""Run the service: open the collection, start jobs and watchers, serve HTTP until stopped."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from api.app import create_app
from api.security import check_bind
from api.service import SimimgService
from service.config import Settings
from service.holder import holding


def service_url(host: str, port: int) -> str:
    """The address a local client uses (a wildcard bind is reached through loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def run_service(
    settings: Settings,
    host: str,
    port: int,
    watch: Sequence[Path] = (),
    notify: Callable[[str], None] | None = None,
    on_start: Callable[[SimimgService], None] | None = None,
    watch_poll: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM; then stop the jobs (recorded as interrupted) and close."""
    check_bind(host, settings.api_key)
    service = SimimgService(settings, watch, notify, watch_poll=watch_poll)
    try:
        app = create_app(service)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        service.start()
        if on_start is not None:
            on_start(service)
        # uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the
        # handler found at start: make that a no-op so the store is closed below.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _ignore)
        url = service_url(host, port)
        description = f"`simimg-admin serve` at http://{host}:{port}"
        if settings.uses_server:
            server.run()
        else:
            with holding(settings.data_dir, description, url=url, token=service.token):
                server.run()
    finally:
        service.close()


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Replaced by uvicorn's own handler while it serves; after that, nothing to do."""
