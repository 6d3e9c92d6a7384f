"""``simimg-admin cluster`` and ``simimg-admin clusters``: density clustering of the collection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from service.clustering.results import ClusteringResult
    from service.config import Settings

SIZE_ROWS = 25  # cluster-size table rows before "... more"
_PHASES = {
    "read": "read vectors",
    "neighbours": "count neighbours",
    "links": "link clusters",
    "write": "write labels",
}


def _phase_reporter(progress: Progress) -> Callable[[str, int, int], None]:
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(_PHASES.get(phase, phase), total=total)
        progress.update(tasks[phase], completed=done, total=total)

    return report


def _parse_eps(eps: str) -> float | str:
    if eps == "auto":
        return eps
    try:
        value = float(eps)
    except ValueError:
        raise fail(f"--eps must be 'auto' or a number, got {eps!r}") from None
    if not 0 < value < 2:
        raise fail(f"--eps is a cosine distance and must be in (0, 2), got {value}")
    return value


def _parse_dims(dims: str) -> int | str | None:
    if dims in ("auto", "none"):
        return None if dims == "none" else dims
    try:
        return int(dims)
    except ValueError:
        raise fail(f"--dims must be 'auto', 'none' or an integer, got {dims!r}") from None


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
    from service.clustering.results import EpsChoice
    from service.clustering.vectors import ALGORITHMS
    from service.collection import open_collection

    if algorithm not in ALGORITHMS:
        raise fail(f"--algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if min_samples < 1:
        raise fail(f"--min-samples must be at least 1, got {min_samples}")
    eps_value = _parse_eps(eps)
    if algorithm == "hdbscan" and eps != "auto":
        raise fail("--eps applies to dbscan only; hdbscan needs no radius")
    dims_value = _parse_dims(dims)

    def show_eps(choice: EpsChoice) -> None:
        err.print(f"eps = {choice.eps:.4f}: {choice.reason}", highlight=False)

    def show_result(result: ClusteringResult) -> None:
        if not as_json:
            _print_result(result)

    with user_errors():
        settings = settings_from(ctx)
        store = open_collection(settings, notify=notice)
        try:
            model_id = _model_id(settings, space)
            with progress_bar("items/s") as progress:
                run = cluster_collection(
                    settings, store, space=space, eps=eps_value, min_samples=min_samples,
                    algorithm=algorithm, dims=dims_value, model_id=model_id,
                    progress=_phase_reporter(progress), on_eps=show_eps, on_result=show_result,
                )
        finally:
            store.close()
    if as_json:
        print_json_line({**run.record, "sizes": run.result.sizes()})
    else:
        err.print(f"labels written to {len(run.ids)} images (run {run.record['run_id']}, "
                  f"{run.result.seconds:.1f}s clustering)", highlight=False)


def _print_result(result: ClusteringResult) -> None:
    eps = "" if result.eps is None else f"eps {result.eps:.4f}, "
    out.print(f"estimated clusters: {result.n_clusters}, noise images: {result.n_noise} "
              f"of {result.labels.size} ({result.algorithm}, {eps}"
              f"min_samples {result.min_samples}, {result.dims} dims)", highlight=False)
    sizes = result.sizes()
    table = Table(title="cluster sizes", title_justify="left")
    table.add_column("cluster", justify="right")
    table.add_column("images", justify="right")
    for label, size in sizes[:SIZE_ROWS]:
        table.add_row(str(label), str(size))
    if len(sizes) > SIZE_ROWS:
        rest = sizes[SIZE_ROWS:]
        table.add_row(f"{len(rest)} more", str(sum(s for _, s in rest)))
    table.add_row("noise (-1)", str(result.n_noise))
    out.print(table)
    if sizes and sizes[0][1] > 0.5 * result.labels.size and result.eps is not None:
        err.print(f"warning: one cluster holds {sizes[0][1]} of {result.labels.size} images: "
                  f"eps {result.eps:.4f} chains groups together; try a smaller --eps "
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
    from service.cluster_labels import export_labels, list_clusters
    from service.clustering_runs import current_run
    from service.collection import open_collection

    if examples < 0:
        raise fail(f"--examples must be at least 0, got {examples}")
    with user_errors():
        settings = settings_from(ctx)
        store = open_collection(settings, notify=notice)
        try:
            run = current_run(settings)
            if run is None:
                raise fail("the collection was never clustered: run `simimg-admin cluster`")
            listing = list_clusters(store, examples)
            exported = export_labels(store, export) if export is not None else None
        finally:
            store.close()
    if as_json:
        for item in listing:
            print_json_line({"cluster": item.cluster, "size": item.size,
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
            table.add_row(name, str(item.size), "\n".join(item.examples))
        out.print(table)
    if exported is not None:
        err.print(f"wrote {exported} rows to {export}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``cluster`` and ``clusters`` to the admin CLI."""
    app.command()(cluster)
    app.command()(clusters)
