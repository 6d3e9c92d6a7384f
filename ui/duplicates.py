"""The Duplicates tab: scan at a threshold, review the groups as thumbnail rows, dismiss, export.

Everything goes through :mod:`service.duplicates`, the code behind ``simimg-admin
duplicates``: the same groups, the same keeper, the same stored dismissals (in the data
dir, so they survive re-scans, threshold changes and restarts, and the CLI sees them).
Thumbnails are decoded from the collection by point id like every other image of the page.

Groups are shown as rows (one thumbnail strip per group, its scores and keeper in the
captions, a "Not duplicates" button beside it), a page of :data:`GROUPS_PER_PAGE` at a time:
a large library can have thousands of groups, and the page only decodes what it shows.
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import gradio as gr

from service.duplicates import DEFAULT_THRESHOLDS, DuplicateGroup, find_duplicates
from service.duplicates.dismissals import dismiss
from service.duplicates.groups import csv_rows
from service.store.schema import VECTOR_AUTOENCODER, VECTOR_MOBILENET

GROUPS_PER_PAGE = 10  # group rows rendered at once
TABLE_ROWS = 500  # groups listed in the folded overview table
TABLE_HEADERS = ["group", "kind", "files", "keep", "lowest score"]
SPACE_CHOICES = [("MobileNet", VECTOR_MOBILENET), ("Autoencoder", VECTOR_AUTOENCODER)]
ROW_COLUMNS = 8  # thumbnails side by side in a group row before it wraps


class DuplicatesView:
    """Handlers of the tab, bound to the page (its store, settings, images and models)."""

    def __init__(self, page: Any, errors: Callable[[], AbstractContextManager[None]]) -> None:
        self.page = page
        self.errors = errors  # shows a SimimgError as the page's one-line message

    def scan(self, threshold: float, space: str, page_number: int = 0) -> tuple[Any, ...]:
        """Find the groups: the summary, the overview table, the groups, the page shown."""
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
                 round(min(i.score for i in g.items), 4)] for g in groups[:TABLE_ROWS]]
        page_number = min(max(int(page_number), 0), page_count(groups) - 1)
        return summary, rows, groups, page_number

    def tiles(self, group: DuplicateGroup) -> list[Any]:
        """Thumbnails of one group: keep mark, score, resolution and path in each caption."""
        tiles = []
        for item in group.items:
            caption = (f"{'KEEP · ' if item.keep else ''}{item.score:.3f} · "
                       f"{item.width}x{item.height} · {item.path}")
            payload = {"locations": [{"root": item.root, "path": item.path}]}
            tiles.append(self.page.images.tile(item.id, payload, caption))
        return tiles

    def dismiss(self, number: int, groups: list[DuplicateGroup], threshold: float,
                space: str, page_number: int) -> tuple[Any, ...]:
        """Store "not duplicates" for group ``number``, then scan again (same page)."""
        group = next((g for g in groups if g.number == number), None)
        if group is None:
            raise gr.Error(f"Group {number} is no longer listed: scan again.")
        dismiss(self.page.settings, group)
        return self.scan(threshold, space, page_number)

    def export(self, groups: list[DuplicateGroup]) -> str:
        """The listed groups as a CSV file (one row per file), to download."""
        with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="duplicates-",
                                         delete=False, newline="") as handle:
            csv.writer(handle).writerows(csv_rows(groups))
        return handle.name


def page_count(groups: list[DuplicateGroup]) -> int:
    """Pages of group rows (at least one, the empty page)."""
    return max(1, math.ceil(len(groups) / GROUPS_PER_PAGE))


def group_heading(group: DuplicateGroup) -> str:
    """The line above a group's thumbnails."""
    lowest = min(i.score for i in group.items)
    kind = "exact copies" if group.kind == "exact" else f"near-duplicates, lowest {lowest:.3f}"
    return (f"**Group {group.number}** · {len(group.items)} files · {kind} · "
            f"keep `{group.keeper.path}`")


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
    with gr.Row():
        previous = gr.Button("◀ Previous", size="sm", elem_id="dups-previous")
        position = gr.Markdown(elem_id="dups-position")
        following = gr.Button("Next ▶", size="sm", elem_id="dups-next")
        export = gr.Button("Export list (CSV)", size="sm", elem_id="dups-export")
    exported = gr.File(label="Exported list", elem_id="dups-file", interactive=False)
    groups = gr.State([])
    page_number = gr.State(0)
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="dups-table",
                         max_height=300, render=False)
    outputs = [summary, table, groups, page_number]

    @gr.render(inputs=[groups, page_number])
    def group_rows(shown: list[DuplicateGroup], number: int) -> None:
        start = number * GROUPS_PER_PAGE
        for group in shown[start:start + GROUPS_PER_PAGE]:
            with gr.Group(elem_classes="dups-group", elem_id=f"dups-group-{group.number}"):
                with gr.Row(equal_height=True):
                    gr.Markdown(group_heading(group), elem_classes="dups-heading")
                    dismiss = gr.Button("Not duplicates", size="sm", scale=0,
                                        elem_id=f"dups-dismiss-{group.number}",
                                        elem_classes="dups-dismiss")
                gr.Gallery(view.tiles(group), columns=min(len(group.items), ROW_COLUMNS),
                           object_fit="contain", height="auto", format="jpeg",
                           elem_classes="dups-row", interactive=False, show_label=False)

            def dismiss_this(*args: Any, group_number: int = group.number) -> tuple[Any, ...]:
                return view.dismiss(group_number, *args)

            dismiss.click(dismiss_this, [groups, threshold, space, page_number], outputs,
                          api_name=False)

    with gr.Accordion("All groups as a table", open=False):
        table.render()
    scan.click(view.scan, [threshold, space], outputs, api_name="duplicates")
    previous.click(lambda n: max(n - 1, 0), page_number, page_number, api_name=False)
    following.click(lambda n, g: min(n + 1, page_count(g) - 1), [page_number, groups],
                    page_number, api_name=False)
    gr.on([groups.change, page_number.change], _position, [groups, page_number], position,
          api_name=False)
    export.click(view.export, groups, exported, api_name="export_duplicates")


def _position(groups: list[DuplicateGroup], number: int) -> str:
    if not groups:
        return ""
    first = number * GROUPS_PER_PAGE + 1
    last = min(len(groups), first + GROUPS_PER_PAGE - 1)
    return f"groups {first} to {last} of {len(groups)} · page {number + 1} of {page_count(groups)}"
