"""``simimg-admin serve``: the service that owns the collection (page, REST API, jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import err, notice, require_dir, settings_from, user_errors


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command()(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to bind; 127.0.0.1 keeps the service on this machine "
                          "(any other address needs SIMIMG_API_KEY)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 7860,
    watch: Annotated[
        list[Path] | None,
        typer.Option("--watch", help="Keep this folder in sync (ingest it, then every new "
                     "file); repeat for more folders"),
    ] = None,
    watch_poll: Annotated[
        bool,
        typer.Option("--watch-poll", help="With --watch: poll file stats instead of OS events "
                     "(network shares, Docker Desktop bind mounts)"),
    ] = False,
) -> None:
    """Serve the search page at http://HOST:PORT/ and the REST API at /api/v1 until Ctrl-C.

    Ingest, train and cluster run as background jobs of the service, one at a time, while
    searches keep being answered. On the embedded store the service holds the data
    directory; `simimg-admin` commands run meanwhile send their work to it.
    """
    from api.server import run_service

    folders = [require_dir(folder, "--watch folder") for folder in watch or []]
    with user_errors():
        settings = settings_from(ctx)

        def started(service: object) -> None:
            count = service.store.count()  # type: ignore[attr-defined]
            where = (f"; {settings.data_dir} is held by this service until it stops (Ctrl-C)"
                     if not settings.uses_server else "")
            err.print(f"serving {count} images at http://{host}:{port}/ "
                      f"(REST API: /api/v1/docs){where}", highlight=False, soft_wrap=True)

        run_service(settings, host, port, folders, notify=notice, on_start=started,
                    watch_poll=watch_poll)
