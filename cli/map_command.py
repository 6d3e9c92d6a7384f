"""``simimg-admin map``: a 2-D layout of the collection for the page's Map tab."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import err, fail, notice, print_json_line, progress_bar, settings_from, user_errors
from cli.remote import service_client


def map_command(
    ctx: typer.Context,
    method: Annotated[
        str, typer.Option(help="umap, pca, or auto: UMAP from 1,000 images, PCA below")
    ] = "auto",
    seed: Annotated[
        int | None, typer.Option(help="Random seed: the same layout every run (UMAP then uses "
                                 "one core)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON")] = False,
) -> None:
    """Place every image on a 2-D map by its MobileNet vector (similar images end up close)
    and store the position as its `map_x` / `map_y` payload.

    The page's Map tab draws the map. Images ingested afterwards appear after the next run.
    """
    from service.collection import open_collection
    from service.map_layout import build_map, check_method

    with user_errors():
        check_method(method)  # refuse an unknown method before opening anything
        settings = settings_from(ctx)
        if service_client(settings) is not None:
            raise fail("the running service holds the collection: stop it, run "
                       "`simimg-admin map`, then start it again")
        store = open_collection(settings, notify=notice)
        try:
            with progress_bar("items/s") as progress:
                tasks: dict[str, int] = {}

                def report(phase: str, done: int, total: int) -> None:
                    if phase not in tasks:
                        tasks[phase] = progress.add_task(f"{phase} positions"
                                                         if phase == "write" else
                                                         "read vectors", total=total)
                    progress.update(tasks[phase], completed=done, total=total)

                result = build_map(store, method=method, seed=seed, progress=report)
        finally:
            store.close()
    if as_json:
        print_json_line(result.to_json())
    else:
        err.print(f"placed {result.points} images with {result.method} "
                  f"({result.seconds_layout:.1f}s layout, {result.seconds_total:.1f}s in all)",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``map`` to the admin CLI."""
    app.command("map")(map_command)
