"""The page's filter controls (capture date, camera, label, folder) beside the cluster filter.

Their values reach the handlers as extra inputs and are parsed by the one parser every
caller uses (:meth:`service.filters.SearchFilters.parse`), so a bad date reads the same
one-line error as on the command line.
"""

from __future__ import annotations

import gradio as gr

from service.filters import SearchFilters

# elem_id suffixes, in the order the handlers receive the values
FILTER_NAMES = ("after", "before", "camera", "label", "folder")
_LABELS = {
    "after": "Taken on or after (2024, 2024-06, 2024-06-01)",
    "before": "Taken before",
    "camera": "Camera (words of Make Model)",
    "label": "Shows (a word: dog, animal, coffee...)",
    "folder": "Below folder",
}


def filter_controls() -> list[gr.Textbox]:
    """An accordion of one textbox per filter; empty means no filter."""
    with gr.Accordion("Filters: date, camera, contents, folder", open=False):
        with gr.Row():
            boxes = [gr.Textbox("", label=_LABELS[name], elem_id=f"filter-{name}",
                                max_lines=1) for name in FILTER_NAMES[:2]]
        with gr.Row():
            boxes += [gr.Textbox("", label=_LABELS[name], elem_id=f"filter-{name}",
                                 max_lines=1) for name in FILTER_NAMES[2:]]
    return boxes


def filters_from(*values: str | None) -> SearchFilters:
    """The controls' values (in :data:`FILTER_NAMES` order) as filters; ConfigError if bad."""
    return SearchFilters.parse(*values)
