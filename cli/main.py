"""``simimg-admin``: ingest, search, status, and the commands other modules register."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cli.common import (
    GlobalOptions,
    err,
    fail,
    notice,
    out,
    print_json_line,
    progress_bar,
    require_dir,
    require_file,
    settings_from,
    user_errors,
)
from cli.filter_options import After, Before, Camera, Folder, Label, parse_filters
from cli.remote import run_job, service_client
from ingest.report import IngestReport
from service.search import SEARCH_MODES, SearchResult

if TYPE_CHECKING:
    from ingest.runner import FolderIngester
    from service.walker import Shard

app = typer.Typer(
    name="simimg-admin",
    help="Self-hosted image similarity search: ingest folders, search by image, manage the "
    "collection. Settings come from SIMIMG_* environment variables (QDRANT_URL selects a "
    "Qdrant server); the options below override them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory (env SIMIMG_DATA_DIR, default ./simimg-data)"),
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Collection name (env SIMIMG_COLLECTION, default images)")
    ] = None,
    qdrant_url: Annotated[
        str | None, typer.Option(help="Qdrant server URL; unset = embedded store (env QDRANT_URL)")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="MobileNet input size (env SIMIMG_IMAGE_SIZE, default 224)")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="Inference runtime: onnx or torch (env SIMIMG_RUNTIME)")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="MobileNetV2 weights file, or 'timm' (env SIMIMG_WEIGHTS)")
    ] = None,
) -> None:
    ctx.obj = GlobalOptions(
        overrides={
            "data_dir": data_dir,
            "collection": collection,
            "qdrant_url": qdrant_url,
            "image_size": image_size,
            "runtime": runtime,
            "weights": weights,
        }
    )


@app.command()
def ingest(
    ctx: typer.Context,
    folders: Annotated[
        list[Path], typer.Argument(help="Folders of images (searched recursively)")
    ],
    batch_size: Annotated[int | None, typer.Option(help="Images per inference batch")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel decode workers")] = None,
    shard: Annotated[
        str | None, typer.Option(help="Ingest only shard i/n of the files (parallel workers)")
    ] = None,
    keep_missing: Annotated[
        bool,
        typer.Option(
            "--keep-missing",
            help="Keep images whose files are gone (e.g. a drive that is not attached)",
        ),
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Allow a folder with no images to remove every image stored under it",
        ),
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep running: apply changes as they happen (Ctrl-C)")
    ] = False,
    watch_poll: Annotated[
        bool,
        typer.Option(
            "--watch-poll",
            help="With --watch: poll file stats instead of OS events (network shares, "
            "Docker Desktop bind mounts)",
        ),
    ] = False,
    debounce: Annotated[
        float,
        typer.Option(min=0.0, help="With --watch: seconds the folder must stay quiet"),
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Make the collection match FOLDERS: embed new images, follow moves, renames, copies
    and edits without re-embedding, and remove images whose files are gone.

    Only images stored under the given folders are touched. Safe to re-run or resume after
    a crash; unchanged files are recognised by size and modification time without being
    read. With --watch, keep running and apply changes as they happen.

    Each round is summarised (with --json, one JSON line per round). Ctrl-C stops.
    """
    from ingest.runner import FolderIngester
    from ingest.watch import FolderWatcher, stop_on_signals
    from service.collection import open_collection
    from service.pipeline import build_pipeline
    from service.walker import Shard

    for folder in folders:
        require_dir(folder, "folder")
    with user_errors():
        settings = settings_from(ctx, batch_size=batch_size, decode_workers=workers)
        selected = Shard.parse(shard) if shard else None
        if (client := service_client(settings)) is not None:
            if watch:
                raise fail("the running service holds the collection: keep folders in sync "
                           "with `simimg-admin serve --watch FOLDER` instead of ingest --watch")
            body: dict[str, Any] = {
                "kind": "ingest", "folders": [str(folder.resolve()) for folder in folders],
                "keep_missing": keep_missing, "allow_empty": allow_empty,
            }
            if shard:
                body["shard"] = shard
            label = f"sync {', '.join(map(str, folders))}"
            result = run_job(client, body, label=label)
            _print_ingest_report(IngestReport.from_json(result), as_json)
            return
        from service.indexing import index_if_due

        store = open_collection(settings, notify=notice)
        try:
            ingester = FolderIngester(store, build_pipeline(settings))
            watcher = None
            if watch:
                watcher = FolderWatcher(
                    ingester, folders, shard=selected, keep_missing=keep_missing,
                    debounce=debounce, polling=watch_poll,
                    on_report=lambda round_report: _print_ingest_report(round_report, as_json),
                    on_error=lambda message: err.print(f"not synced: {message}"),
                )
                watcher.start()  # before listing, so no file slips between the two
            # With --watch, SIGTERM/Ctrl-C stop cleanly from the very start (also during the
            # first scan); without it, Ctrl-C keeps its usual meaning.
            signals = stop_on_signals(watcher.stop) if watcher else contextlib.nullcontext()
            try:
                with signals:
                    report = _run_sync(
                        ingester, folders, selected, keep_missing=keep_missing,
                        allow_empty=allow_empty,
                    )
                    _print_ingest_report(report, as_json)
                    index_if_due(settings, store, notify=notice)
                    if watcher is not None:
                        watched = ", ".join(map(str, folders))
                        err.print(f"watching {watched} for changes (Ctrl-C to stop)")
                        total = watcher.run()
                        err.print(f"stopped watching: {total.summary()}")
            finally:
                if watcher is not None:
                    watcher.close()
        finally:
            store.close()


def _run_sync(
    ingester: FolderIngester, folders: list[Path], shard: Shard | None, **options: bool
) -> IngestReport:
    from ingest.sync import plan_sync, run_sync

    with err.status(f"scanning {', '.join(map(str, folders))}"):
        plan = plan_sync(ingester.store, folders, shard=shard, **options)
    with progress_bar() as progress:
        task = progress.add_task(f"sync {', '.join(map(str, folders))}", total=None)
        return run_sync(
            ingester,
            plan,
            on_total=lambda total: progress.update(task, total=total),
            on_progress=lambda n: progress.advance(task, n),
        )


def _print_ingest_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print_json_line(report.to_json())
        return
    err.print(report.summary())
    for path, reason in report.failed:
        err.print(f"  skipped {path}: {reason}", highlight=False, markup=False)


@app.command()
def search(
    ctx: typer.Context,
    images: Annotated[
        list[Path] | None, typer.Argument(help="Query image file(s); optional with --like")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Number of results per query")] = 6,
    space: Annotated[
        str, typer.Option(help=f"Vector space: {', '.join(SEARCH_MODES)}")
    ] = "mobilenet",
    cluster: Annotated[
        str | None,
        typer.Option(help="Only results in this cluster: its number (-1 = noise) or its name"),
    ] = None,
    like: Annotated[
        list[str] | None, typer.Option("--like", help="Stored image id: more like this (repeat)")
    ] = None,
    unlike: Annotated[
        list[str] | None,
        typer.Option("--unlike", help="Stored image id: less like this (repeat)"),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="Hide results below this cosine similarity (fused: "
                     "each space's ranking is cut before fusion)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines: one object per query")
    ] = False,
    after: After = None,
    before: Before = None,
    camera: Camera = None,
    label: Label = None,
    folder: Folder = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Scan every vector instead of using the index "
                           "(slower; to check the index's results)")
    ] = False,
) -> None:
    """Find the images most similar to each query image (in the collection or not).

    --like / --unlike steer the search with stored images (ids as `search --json` prints
    them): more like these, less like those; with --like alone no query image is needed.
    """
    from service.cluster_names import resolve_cluster
    from service.collection import open_collection
    from service.pipeline import build_pipeline
    from service.search import Searcher

    for image in images or []:
        require_file(image, "query image")
    queries: list[Path | None] = list(images or []) or [None]
    steer: dict[str, Any] = {"like": like or [], "unlike": unlike or [], "min_score": min_score}
    with user_errors():
        filters = parse_filters(after, before, camera, label, folder)
        settings = settings_from(ctx)
        if (client := service_client(settings)) is not None:
            for query in queries:
                found = client.search(query, space, k, cluster, settings.max_file_bytes,
                                      filters, exact=exact, **steer)
                _print_results(query, [SearchResult(**r) for r in found], as_json)
            return
        store = open_collection(settings, notify=notice)
        try:
            searcher = Searcher(store, build_pipeline(settings))
            label = resolve_cluster(settings, cluster)
            for query in queries:
                results = searcher.search(query, space=space, k=k, cluster=label,
                                          filters=filters, exact=exact, **steer)
                _print_results(query, results, as_json)
        finally:
            store.close()


def _print_results(query: Path | None, results: list[SearchResult], as_json: bool) -> None:
    if as_json:
        print_json_line({"query": None if query is None else str(query),
                         "results": [r.to_json() for r in results]})
        return
    title = f"most similar to {query}" if query else "most like the liked images"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("cluster", justify="right")
    table.add_column("path")
    for rank, result in enumerate(results, start=1):
        cluster = "" if result.cluster is None else str(result.cluster)
        if result.cluster_name:
            cluster += f" ({result.cluster_name})"
        table.add_row(str(rank), f"{result.score:.4f}", cluster, str(result.file))
    out.print(table)


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object")] = False,
) -> None:
    """Show how many images are stored, which vectors they have, and the configuration."""
    from service.collection import open_collection
    from service.status import collection_status

    with user_errors():
        settings = settings_from(ctx)
        if (client := service_client(settings)) is not None:
            info = client.status()
        else:
            store = open_collection(settings, notify=notice)
            try:
                info = collection_status(settings, store)
            finally:
                store.close()
    if as_json:
        print_json_line(info)
        return
    table = Table(show_header=False, title="simimg status", title_justify="left")
    table.add_row(
        "store",
        f"{info['store']} / collection {info['collection']} (schema {info['schema_version']})",
    )
    table.add_row("points", str(info["points"]))
    files = info["files"]
    table.add_row(
        "files",
        f"{files['locations']} in {len(files['roots'])} folders"
        + (f", {files['missing']} missing (the next ingest of their folder removes them)"
           if files["missing"] else ""),
    )
    for space, count in info["vectors"].items():
        table.add_row(f"{space} vectors", str(count))
    total = sum(info["vectors"].values())
    table.add_row("vector index", f"{info['indexed_vectors']:,} of {total:,} vectors indexed"
                  + (" (the rest are searched exactly)" if info["indexed_vectors"] < total else ""))
    clustering = info["clustering"]
    if clustering:
        table.add_row(
            "clustering",
            f"{clustering.get('clusters')} clusters, {clustering.get('noise')} noise "
            f"({clustering.get('space')}, eps {_eps_text(clustering.get('eps'))})",
        )
        table.add_row("unlabelled since", str(info["unlabelled"]))
    else:
        table.add_row("clustering", "never run")
    mobilenet = info["mobilenet"]
    diff = mobilenet["onnx_max_abs_diff"]
    table.add_row(
        "mobilenet",
        f"{mobilenet['model_id']} ({mobilenet['runtime']}"
        + (f", ONNX export verified: max abs diff {diff:.1e})" if diff is not None else ")"),
    )
    autoencoder = info["autoencoder"]
    table.add_row("autoencoder", autoencoder.get("version", "?") if autoencoder else "not trained")
    for key, value in info["config"].items():
        table.add_row(f"config {key}", str(value))
    out.print(table)


def _eps_text(eps: object) -> str:
    return f"{eps:.4f}" if isinstance(eps, float) else str(eps)


def _register_feature_commands() -> None:
    """Commands defined in their own modules, one module per feature."""
    from cli import (
        browse_command,
        cluster_commands,
        duplicates_command,
        index_command,
        map_command,
        serve_command,
        server_commands,
        train_commands,
    )

    for module in (train_commands, cluster_commands, duplicates_command, server_commands,
                   serve_command, browse_command, map_command, index_command):
        module.register(app)


_register_feature_commands()
