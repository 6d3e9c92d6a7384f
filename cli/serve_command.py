"""``simimg-admin serve``: the local web page (Gradio) on the shared search function."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from cli.common import err, notice, settings_from, user_errors


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command()(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to bind; 127.0.0.1 keeps the page on this machine")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 7860,
) -> None:
    """Serve the search page at http://HOST:PORT until Ctrl-C.

    The server holds the embedded data directory while it runs (QDRANT_URL avoids that).
    """
    from service.collection import open_collection
    from service.holder import holding
    from service.pipeline import build_pipeline
    from service.search import Searcher
    from ui.app import build_app, launch

    with user_errors():
        settings = settings_from(ctx)
        store = open_collection(settings, notify=notice)
        try:
            searcher = Searcher(store, build_pipeline(settings))
            demo = build_app(searcher, settings)
            if not settings.uses_server:
                err.print(
                    f"serving {store.count()} images; {settings.data_dir} is held by this "
                    "server until it stops (Ctrl-C)", highlight=False,
                )
            signal.signal(signal.SIGTERM, _interrupt)  # close the store cleanly on SIGTERM
            with holding(settings.data_dir, f"`simimg-admin serve` at http://{host}:{port}"):
                launch(demo, settings, host=host, port=port)
        finally:
            store.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
