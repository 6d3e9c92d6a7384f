"""``simimg-admin browse`` (images by filters, no query image) and ``facets KEY``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from cli.common import notice, out, print_json_line, settings_from, user_errors
from cli.filter_options import After, Before, Camera, Cluster, Folder, Label, parse_filters
from cli.remote import service_client

if TYPE_CHECKING:
    from api.client import ServiceClient
    from service.store.base import VectorStore

T = TypeVar("T")


def browse(
    ctx: typer.Context,
    after: After = None,
    before: Before = None,
    camera: Camera = None,
    label: Label = None,
    folder: Folder = None,
    cluster: Cluster = None,
    limit: Annotated[int, typer.Option(help="At most this many images")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON Lines: one per image")]
    = False,
) -> None:
    """List the images matching the filters (any combination), without a query image."""
    from service.browse import browse as browse_store
    from service.search import SearchResult

    with user_errors():
        filters = parse_filters(after, before, camera, label, folder)
        results = _run(
            ctx,
            lambda client: [SearchResult(**r) for r in client.browse(filters, cluster, limit)],
            lambda store: browse_store(store, filters, cluster, limit),
        )
    if as_json:
        for result in results:
            print_json_line(result.to_json())
        return
    table = Table(title=f"{len(results)} images", title_justify="left")
    for column in ("taken", "camera", "cluster", "labels", "path"):
        table.add_column(column)
    for result in results:
        payload = result.payload
        table.add_row(
            str(payload.get("taken_at", "")), str(payload.get("camera", "")),
            "" if result.cluster is None else str(result.cluster),
            ", ".join(payload.get("labels", [])[:3]), str(result.file),
        )
    out.print(table)


def facets(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="camera, labels, cluster or year (of taken_at)")],
    after: After = None,
    before: Before = None,
    camera: Camera = None,
    label: Label = None,
    folder: Folder = None,
    cluster: Cluster = None,
    limit: Annotated[int, typer.Option(help="At most this many values")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Count the images per value of KEY (Qdrant's facet API), most frequent first."""
    from service.browse import facet_counts

    with user_errors():
        filters = parse_filters(after, before, camera, label, folder)
        counts = _run(
            ctx,
            lambda client: client.facets(key, filters, cluster, limit),
            lambda store: facet_counts(store, key, filters, cluster, limit),
        )
    if as_json:
        print_json_line({"key": key, "counts": [{"value": v, "count": c} for v, c in counts]})
        return
    table = Table(title=f"images per {key}", title_justify="left")
    table.add_column(key)
    table.add_column("images", justify="right")
    for value, count in counts:
        table.add_row(str(value), str(count))
    out.print(table)


def _run(
    ctx: typer.Context,
    remote: Callable[[ServiceClient], T],
    local: Callable[[VectorStore], T],
) -> T:
    """``remote(client)`` when a running service holds the data dir, else ``local(store)``."""
    from service.collection import open_collection

    settings = settings_from(ctx)
    if (client := service_client(settings)) is not None:
        return remote(client)
    store = open_collection(settings, notify=notice)
    try:
        return local(store)
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.command()(browse)
    app.command()(facets)
