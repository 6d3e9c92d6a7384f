"""``simimg-admin cluster`` and ``simimg-admin clusters``: density clustering of the collection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from cli.common import (
    err,
    fail,
    notice,
    out,
    print_json_line,
    progress_bar,
    settings_from,
    user_errors,
)
from cli.remote import run_job, service_client

if TYPE_CHECKING:
    from service.clustering.results import ClusteringResult
    from service.config import Settings

SIZE_ROWS = 25  # cluster-size table rows before "... more"
_PHASES = {
    "read": "read vectors",
    "neighbours": "count neighbours",
    "links": "link clusters",
    "write": "write labels",
    "index": "rebuild the vector index (the labelled points left it)",
}


def _phase_reporter(progress: Progress) -> Callable[[str, int, int], None]:
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(_PHASES.get(phase, phase), total=total)
        progress.update(tasks[phase], completed=done, total=total)

    return report


def _model_id(settings: Settings, space: str) -> str | None:
    from service.store.schema import VECTOR_AUTOENCODER

    if space != VECTOR_AUTOENCODER:
        return None
    from service.pipeline import build_pipeline

    return build_pipeline(settings, [space]).model_id(space)


def cluster(
    ctx: typer.Context,
    space: Annotated[
        str, typer.Option(help="Vector space: mobilenet or autoencoder")
    ] = "mobilenet",
    eps: Annotated[
        str,
        typer.Option(
            help="DBSCAN radius as cosine distance, or 'auto': chosen from the data (the "
            "k-distance quantile with the best silhouette on a sample)"
        ),
    ] = "auto",
    min_samples: Annotated[
        int, typer.Option(help="Neighbours (itself included) that make a core point; "
                          "with hdbscan also the minimum cluster size")
    ] = 5,
    algorithm: Annotated[
        str, typer.Option(help="dbscan, or hdbscan for data of varying density "
                          "(slower; best below ~50k images)")
    ] = "dbscan",
    dims: Annotated[
        str, typer.Option(help="PCA dimensions before clustering: auto (128 from 20k images), "
                          "none, or a number")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON")] = False,
) -> None:
    """Group similar images with DBSCAN (cosine) and store each image's label as `cluster`.

    Prints the number of clusters and of noise images (-1) and the cluster sizes, then
    replaces every image's label. `search --cluster N` then searches one cluster.
    """
    from service.cluster_labels import cluster_collection
    from service.cluster_options import parse_cluster_options
    from service.clustering.results import EpsChoice
    from service.collection import open_collection

    with user_errors():
        options = parse_cluster_options(space, eps, min_samples, algorithm, dims)

    def show_eps(choice: EpsChoice) -> None:
        err.print(f"eps = {choice.eps:.4f}: {choice.reason}", highlight=False)

    def show_result(result: ClusteringResult) -> None:
        if not as_json:
            _print_result(result.summary(), result.sizes())

    with user_errors():
        settings = settings_from(ctx)
        if (client := service_client(settings)) is not None:
            summary = run_job(client, {"kind": "cluster", **options.to_json()}, "items/s")
            sizes = [tuple(item) for item in summary.pop("sizes")]
            labelled = summary.pop("labelled")
            if not as_json:
                _print_result(summary, sizes)
            _print_run(summary, sizes, labelled, as_json)
            return
        store = open_collection(settings, notify=notice)
        try:
            model_id = _model_id(settings, options.space)
            with progress_bar("items/s") as progress:
                run = cluster_collection(
                    settings, store, space=options.space, eps=options.eps,
                    min_samples=options.min_samples, algorithm=options.algorithm,
                    dims=options.dims, model_id=model_id,
                    progress=_phase_reporter(progress), on_eps=show_eps, on_result=show_result,
                )
        finally:
            store.close()
    _print_run(run.record, run.result.sizes(), len(run.ids), as_json)


def _print_run(
    record: dict[str, Any], sizes: list[tuple[int, int]], labelled: int, as_json: bool
) -> None:
    if as_json:
        print_json_line({**record, "sizes": sizes})
    else:
        err.print(f"labels written to {labelled} images (run {record['run_id']}, "
                  f"{record['seconds']:.1f}s clustering)", highlight=False)


def _print_result(summary: dict[str, Any], sizes: list[tuple[int, int]]) -> None:
    """The clustering outcome (``ClusteringResult.summary()``) and its cluster sizes."""
    eps = "" if summary["eps"] is None else f"eps {summary['eps']:.4f}, "
    points = summary["points"]
    out.print(f"estimated clusters: {summary['clusters']}, noise images: {summary['noise']} "
              f"of {points} ({summary['algorithm']}, {eps}"
              f"min_samples {summary['min_samples']}, {summary['dims']} dims)", highlight=False)
    table = Table(title="cluster sizes", title_justify="left")
    table.add_column("cluster", justify="right")
    table.add_column("images", justify="right")
    for label, size in sizes[:SIZE_ROWS]:
        table.add_row(str(label), str(size))
    if len(sizes) > SIZE_ROWS:
        rest = sizes[SIZE_ROWS:]
        table.add_row(f"{len(rest)} more", str(sum(s for _, s in rest)))
    table.add_row("noise (-1)", str(summary["noise"]))
    out.print(table)
    if sizes and sizes[0][1] > 0.5 * points and summary["eps"] is not None:
        err.print(f"warning: one cluster holds {sizes[0][1]} of {points} images: "
                  f"eps {summary['eps']:.4f} chains groups together; try a smaller --eps "
                  "(e.g. 0.7x) or --algorithm hdbscan", highlight=False)


def clusters(
    ctx: typer.Context,
    examples: Annotated[int, typer.Option(help="Example paths shown per cluster")] = 3,
    export: Annotated[
        Path | None, typer.Option(help="Write id,path,root,cluster for every image to this CSV")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines: one object per cluster")
    ] = False,
) -> None:
    """List the clusters of the current labelling with their sizes and example images."""
    from service.cluster_labels import ClusterListing, export_labels, list_clusters
    from service.clustering_runs import current_run
    from service.collection import open_collection

    if examples < 0:
        raise fail(f"--examples must be at least 0, got {examples}")
    never = "the collection was never clustered: run `simimg-admin cluster`"
    with user_errors():
        settings = settings_from(ctx)
        if (client := service_client(settings)) is not None:
            answer = client.clusters(examples)
            run = answer["run"]
            if run is None:
                raise fail(never)
            listing = [ClusterListing(**item) for item in answer["clusters"]]
            exported = client.export_labels(export) if export is not None else None
        else:
            store = open_collection(settings, notify=notice)
            try:
                run = current_run(settings)
                if run is None:
                    raise fail(never)
                listing = list_clusters(store, examples)
                exported = export_labels(store, export) if export is not None else None
            finally:
                store.close()
    if as_json:
        for item in listing:
            print_json_line({"cluster": item.cluster, "name": item.name, "size": item.size,
                             "examples": item.examples})
    else:
        table = Table(
            title=f"clusters of run {run.get('run_id')} ({run.get('space')}, "
                  f"{run.get('algorithm', 'dbscan')}, eps {run.get('eps')})",
            title_justify="left",
        )
        table.add_column("cluster", justify="right")
        table.add_column("images", justify="right")
        table.add_column("examples")
        for item in listing:
            name = "noise (-1)" if item.cluster < 0 else str(item.cluster)
            if item.name:
                name += f" ({item.name})"
            table.add_row(name, str(item.size), "\n".join(item.examples))
        out.print(table)
    if exported is not None:
        err.print(f"wrote {exported} rows to {export}", highlight=False)


def name_cluster(
    ctx: typer.Context,
    cluster: Annotated[int, typer.Argument(help="Cluster number (see `simimg-admin clusters`)")],
    name: Annotated[str, typer.Argument(help="The name; \"\" removes it")],
) -> None:
    """Name a cluster of the current run: shown beside its number everywhere, and usable
    in its place (`search --cluster NAME`). Stored in the data dir and as each image's
    `cluster_name` payload; the next `cluster` run starts without names."""
    from service.cluster_names import name_cluster as give_name
    from service.collection import open_collection

    with user_errors():
        settings = settings_from(ctx)
        if service_client(settings) is not None:
            raise fail("the running service holds the collection: name clusters on its page "
                       "(Clusters tab) or stop it first")
        store = open_collection(settings, notify=notice)
        try:
            names = give_name(settings, store, cluster, name)
        finally:
            store.close()
    named = names.get(cluster)
    err.print(f"cluster {cluster} is now named {named!r}" if named
              else f"cluster {cluster} has no name now", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``cluster``, ``clusters`` and ``name-cluster`` to the admin CLI."""
    app.command()(cluster)
    app.command()(clusters)
    app.command("name-cluster")(name_cluster)
