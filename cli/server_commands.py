"""``simimg-admin migrate``: copy the collection between the embedded store and a Qdrant server."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import err, fail, print_json_line, progress_bar, settings_from, user_errors


def migrate(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Copy the embedded collection TO this Qdrant (URL or path:DIR)"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from", help="Copy FROM this Qdrant (URL or path:DIR) into the embedded store"
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Points per batch")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Copy every point (vectors and payload) between the embedded store and a Qdrant server.

    The embedded side is the data directory's collection; QDRANT_URL is ignored here.

    The server side is a URL like http://localhost:6333 (with QDRANT_API_KEY when set).

    path:DIR instead selects qdrant-client's local mode in DIR (tests, quick looks).

    Safe to re-run after an interruption; counts and ids are verified at the end.
    """
    from service.migrate import copy_points, open_embedded, open_remote

    if (to is None) == (source is None):
        raise fail("give exactly one of --to URL or --from URL", code=2)
    with user_errors():
        settings = settings_from(ctx)
        remote_address = to if to is not None else str(source)
        embedded = open_embedded(settings)
        try:
            remote = open_remote(settings, remote_address)
            try:
                src, dst = (embedded, remote) if to is not None else (remote, embedded)
                label = f"migrate {'embedded -> ' + to if to else source + ' -> embedded'}"
                if not src.count():
                    err.print("the source collection is empty: nothing to copy")
                already = dst.count()
                if already:
                    err.print(f"target already holds {already} points; they are verified too")
                with progress_bar("points/s") as progress:
                    task = progress.add_task(label, total=src.count())
                    report = copy_points(
                        src, dst, batch_size, lambda n: progress.advance(task, n)
                    )
            finally:
                remote.close()
        finally:
            embedded.close()
    if as_json:
        print_json_line(report.to_json())
    else:
        err.print(
            f"copied {report.copied} points; source {report.source_count}, "
            f"target {report.target_count}: counts and ids match"
        )


def register(app: typer.Typer) -> None:
    """Add the server-related commands to ``simimg-admin``."""
    app.command()(migrate)
