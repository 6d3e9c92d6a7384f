"""The Duplicates tab: scan at a threshold, review each group's thumbnails, dismiss, export.

Everything goes through :mod:`service.duplicates`, the code behind ``simimg-admin
duplicates``: the same groups, the same keeper, the same stored dismissals (in the data
dir, so they survive re-scans, threshold changes and restarts, and the CLI sees them).
Thumbnails are decoded from the collection by point id like every other image of the page.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import gradio as gr

from service.duplicates import DEFAULT_THRESHOLDS, DuplicateGroup, find_duplicates
from service.duplicates.dismissals import dismiss
from service.duplicates.groups import csv_rows
from service.store.schema import VECTOR_AUTOENCODER, VECTOR_MOBILENET

GROUP_ROWS = 500  # groups listed in the overview table
TABLE_HEADERS = ["group", "kind", "files", "keep", "lowest score"]
SPACE_CHOICES = [("MobileNet", VECTOR_MOBILENET), ("Autoencoder", VECTOR_AUTOENCODER)]


class DuplicatesView:
    """Handlers of the tab, bound to the page (its store, settings, images and models)."""

    def __init__(self, page: Any, errors: Callable[[], AbstractContextManager[None]]) -> None:
        self.page = page
        self.errors = errors  # shows a SimimgError as the page's one-line message

    def scan(self, threshold: float, space: str) -> tuple[Any, ...]:
        """Find the groups; the overview, the group picker, the first group's thumbnails."""
        with self.errors():
            scan = find_duplicates(
                self.page.settings, self.page.store, space=space, threshold=float(threshold),
            )
        groups = scan.groups
        extras = sum(len(g.extras) for g in groups)
        summary = (f"**{len(groups)} groups** ({sum(g.kind == 'exact' for g in groups)} exact) "
                   f"at {space} threshold {scan.threshold:.2f}: {extras} files could go. "
                   "Keeper: largest resolution, then largest file, then oldest.")
        rows = [[g.number, g.kind, len(g.items), g.keeper.path,
                 round(min(i.score for i in g.items), 4)] for g in groups[:GROUP_ROWS]]
        choices = [(f"{g.number} · {g.kind} · {len(g.items)} files · {g.keeper.path}",
                    str(g.number)) for g in groups]
        first = choices[0][1] if choices else None
        return (summary, rows, gr.update(choices=choices, value=first),
                self.tiles(first, groups), groups)

    def tiles(self, choice: str | None, groups: list[DuplicateGroup]) -> list[Any]:
        """Thumbnails of one group: score, keep mark, resolution and path in each caption."""
        group = _find(choice, groups)
        if group is None:
            return []
        tiles = []
        for item in group.items:
            caption = (f"{'KEEP · ' if item.keep else ''}{item.score:.3f} · "
                       f"{item.width}x{item.height} · {item.path}")
            payload = {"locations": [{"root": item.root, "path": item.path}]}
            tiles.append(self.page.images.tile(item.id, payload, caption))
        return tiles

    def dismiss(self, choice: str | None, groups: list[DuplicateGroup], threshold: float,
                space: str) -> tuple[Any, ...]:
        """Store "not duplicates" for the shown group, then scan again."""
        group = _find(choice, groups)
        if group is None:
            raise gr.Error("Pick a group first.")
        dismiss(self.page.settings, group)
        return self.scan(threshold, space)

    def export(self, groups: list[DuplicateGroup]) -> str:
        """The listed groups as a CSV file (one row per file), to download."""
        with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="duplicates-",
                                         delete=False, newline="") as handle:
            csv.writer(handle).writerows(csv_rows(groups))
        return handle.name


def _find(choice: str | None, groups: list[DuplicateGroup]) -> DuplicateGroup | None:
    return next((g for g in groups if str(g.number) == str(choice)), None)


def duplicates_tab(page: Any, errors: Callable[[], AbstractContextManager[None]]) -> None:
    """Build the tab's components and events inside the current ``gr.Tab``.

    ``page``: the page's handler object (store, settings, searcher, images); ``errors``: its
    context manager turning simimg errors into messages on the page."""
    view = DuplicatesView(page, errors)
    with gr.Row():
        threshold = gr.Slider(0.5, 0.99, value=DEFAULT_THRESHOLDS[VECTOR_MOBILENET], step=0.01,
                              label="Similarity threshold", elem_id="dups-threshold", scale=3)
        space = gr.Radio(SPACE_CHOICES, value=VECTOR_MOBILENET, label="Vector space",
                         elem_id="dups-space", scale=2)
        scan = gr.Button("Find duplicates", variant="primary", elem_id="dups-scan", scale=1)
    summary = gr.Markdown(elem_id="dups-summary")
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="dups-table",
                         max_height=300)
    pick = gr.Dropdown([], label="Show group", elem_id="dups-pick", interactive=True)
    grid = gr.Gallery(label="Files of this group (KEEP marks the suggested keeper)",
                      columns=6, object_fit="contain", height="auto", format="jpeg",
                      elem_id="dups-grid", interactive=False)
    with gr.Row():
        not_duplicates = gr.Button("Not duplicates", elem_id="dups-dismiss")
        export = gr.Button("Export list (CSV)", elem_id="dups-export")
    exported = gr.File(label="Exported list", elem_id="dups-file", interactive=False)
    groups = gr.State([])
    outputs = [summary, table, pick, grid, groups]
    scan.click(view.scan, [threshold, space], outputs, api_name="duplicates")
    pick.change(view.tiles, [pick, groups], grid, api_name=False)
    not_duplicates.click(view.dismiss, [pick, groups, threshold, space], outputs,
                         api_name="dismiss_duplicates")
    export.click(view.export, groups, exported, api_name="export_duplicates")
