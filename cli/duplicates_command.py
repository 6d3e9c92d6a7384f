"""``simimg-admin duplicates``: exact copies and near-duplicates, listed, dismissed or moved."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
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
    from service.config import Settings
    from service.duplicates import DuplicateGroup
    from service.duplicates.moves import PlannedMove
    from service.store.base import VectorStore


def duplicates(
    ctx: typer.Context,
    threshold: Annotated[
        float | None,
        typer.Option(help="Similarity (cosine) at or above which two images are "
                     "near-duplicates; default: the measured one for the space "
                     "(mobilenet 0.80, autoencoder 0.75: docs/benchmarks-duplicates.md)"),
    ] = None,
    space: Annotated[
        str, typer.Option(help="Vector space: mobilenet or autoencoder")
    ] = "mobilenet",
    against: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="ROOT_A ROOT_B: only images under ROOT_B that duplicate something "
                     "under ROOT_A (new photos against an archive); both ingested folders"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines: one object per group")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one row per file")] = False,
    move_extras_to: Annotated[
        Path | None,
        typer.Option(help="Move every file not kept into this folder (outside the library), "
                     "then sync the collection; lists the moves only, unless --yes"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="With --move-extras-to: move")] = False,
    dismiss: Annotated[
        list[str] | None,
        typer.Option(help="Mark a group of the last scan (its number or key) as not "
                     "duplicates; remembered by later scans. Repeatable"),
    ] = None,
) -> None:
    """Find exact copies (one content in several places) and near-duplicates.

    Near-duplicate groups are formed by complete linkage: every two images in a group are
    at or above --threshold, so a chain of weakly similar images never becomes one group.
    The suggested keeper of each group has the largest resolution, then the largest file,
    then the oldest file. A full scan stores each image's group number in the payload
    `duplicate_group`. Nothing is ever deleted.
    """
    from service.collection import open_collection
    from service.duplicates import find_duplicates
    from service.duplicates.dismissals import dismiss as dismiss_group
    from service.duplicates.scan import last_scan_group

    if as_json and as_csv:
        raise fail("--json and --csv exclude each other")
    if yes and move_extras_to is None:
        raise fail("--yes only applies to --move-extras-to")
    with user_errors():
        settings = settings_from(ctx)
        if dismiss:
            for which in dismiss:
                group = last_scan_group(settings, which)
                dismiss_group(settings, group)
                err.print(f"group {group.number} ({group.key}, {len(group.items)} files) "
                          "marked as not duplicates", highlight=False)
            return
        store = open_collection(settings, notify=notice)
        try:
            with progress_bar("images/s") as progress:
                task = progress.add_task("find duplicates", total=None)
                scan = find_duplicates(
                    settings, store, space=space, threshold=threshold,
                    against=against,
                    on_total=lambda n: progress.update(task, total=n),
                    on_progress=lambda n: progress.advance(task, n),
                    notify=notice,
                )
            if move_extras_to is None:
                _print_groups(scan.groups, as_json, as_csv)
                err.print(_summary(scan.groups, scan.threshold, scan.space), highlight=False)
                return
            _move_extras(settings, store, scan.groups, move_extras_to, yes)
        finally:
            store.close()


def _summary(groups: list[DuplicateGroup], threshold: float, space: str) -> str:
    exact = sum(g.kind == "exact" for g in groups)
    extras = sum(len(g.extras) for g in groups)
    return (f"{len(groups)} groups ({exact} exact, {len(groups) - exact} near; {space} "
            f"threshold {threshold:.2f}): {extras} files could go")


def _print_groups(groups: list[DuplicateGroup], as_json: bool, as_csv: bool) -> None:
    if as_json:
        for group in groups:
            print_json_line(group.to_json())
        return
    if as_csv:
        from service.duplicates.groups import csv_rows

        csv.writer(sys.stdout).writerows(csv_rows(groups))
        return
    if not groups:
        return  # the summary line says so
    table = Table(title="duplicates", title_justify="left")
    for name, justify in (("group", "right"), ("kind", "left"), ("keep", "left"),
                          ("score", "right"), ("resolution", "right"), ("bytes", "right"),
                          ("file", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for group in groups:
        for n, item in enumerate(group.items):
            first = n == 0
            table.add_row(
                f"{group.number} {group.key}" if first else "", group.kind if first else "",
                "keep" if item.keep else "", f"{item.score:.3f}",
                f"{item.width}x{item.height}", f"{item.file_size:,}",
                f"{item.root}/{item.path}", end_section=n == len(group.items) - 1,
            )
    out.print(table)


def _move_extras(settings: Settings, store: VectorStore, groups: list[DuplicateGroup],
                 dest: Path, yes: bool) -> None:
    from service.duplicates.moves import apply_moves, plan_moves
    from service.status import file_status

    roots = list(file_status(store)["roots"])
    planned = plan_moves(groups, dest, roots)
    if not yes:
        _print_moves(planned)
        err.print(f"dry run: {len(planned)} files would be moved to {dest}; "
                  "nothing was changed (add --yes to move them)", highlight=False)
        return
    outcomes = apply_moves(planned)
    moved = [o.move for o in outcomes if o.error is None]
    for outcome in outcomes:
        if outcome.error is not None:
            err.print(f"  not moved {outcome.move.source}: {outcome.error}", highlight=False,
                      markup=False)
    _print_moves(moved)
    err.print(f"moved {len(moved)} of {len(planned)} files to {dest}", highlight=False)
    if moved:
        _sync_after_moves(settings, store, sorted({m.root for m in moved}))


def _print_moves(moves: list[PlannedMove]) -> None:
    for move in moves:
        out.print(f"{move.source} -> {move.target}", highlight=False, markup=False,
                  soft_wrap=True)


def _sync_after_moves(settings: Settings, store: VectorStore, roots: list[str]) -> None:
    """The library sync of the folders files left, so the collection follows the moves."""
    from ingest.runner import FolderIngester
    from ingest.sync import sync_roots
    from service.pipeline import build_pipeline

    ingester = FolderIngester(store, build_pipeline(settings))
    # The files were moved out by us a moment ago: an emptied folder is no detached drive.
    report = sync_roots(ingester, [Path(root) for root in roots], allow_empty=True)
    err.print(f"collection synced: {report.summary()}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``duplicates`` to the admin CLI."""
    app.command()(duplicates)
