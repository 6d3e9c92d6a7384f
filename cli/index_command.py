"""``simimg-admin optimize``: build the vector index (HNSW) now."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import notice, out, print_json_line, settings_from, user_errors
from cli.remote import run_job, service_client


def optimize(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object")] = False,
) -> None:
    """Build the vector index so searches stop scanning every vector (minutes per 100,000
    images). With `serve` running, the service builds it and keeps answering searches."""
    from service.collection import open_collection
    from service.indexing import build_index

    with user_errors():
        settings = settings_from(ctx)
        if (client := service_client(settings)) is not None:
            result = run_job(client, {"kind": "optimize"}, "steps")
        else:
            store = open_collection(settings, notify=notice)
            try:
                notice("building the vector index (the store is busy until it is done)")
                result = build_index(store).to_json()
            finally:
                store.close()
    if as_json:
        print_json_line(result)
        return
    out.print(f"index serves {result['indexed_vectors']:,} of {result['vectors']:,} vectors "
              f"({'built' if result['built'] else 'already up to date'}, "
              f"{result['seconds']:.1f} s)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(optimize)
