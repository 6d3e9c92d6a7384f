"""Steering on the page: thumbs up / down on results, "Search again", a minimum-score slider.

Click a result, then "Like" or "Unlike": its id joins the liked or unliked list (shown as
small thumbnails). The clicked tile (a result, or an image in the Clusters tab) is kept in
server-side session state (``gr.State``), and the click and the buttons share one queue
(:data:`SELECTION`, one at a time, first come first served): a Like pressed right after a
click is handled after that click, so it always takes the image clicked last, never the one
before or none. The API endpoints ``/like`` and ``/unlike`` take a point id instead. "Search
again" runs the same search function as the CLI's ``search --like ... --unlike ...``
(Qdrant's recommend query) with the current query image, if any, as one more positive
example. The slider is ``--min-score``; 0 shows everything. Labels are plain text: emoji
show as empty boxes where no emoji font is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.images import CollectionImages, pick_id

LIKE, UNLIKE = "like", "unlike"
SELECTION = "selection"  # the queue that orders tile clicks before the buttons' presses
Thumbs = list[tuple[str, str]]  # (thumbnail file, point id)


@dataclass
class FeedbackPanel:
    """The thumbs buttons, the two example lists and their thumbnails."""

    like: gr.Button
    unlike: gr.Button
    again: gr.Button
    clear: gr.Button
    liked: gr.State
    unliked: gr.State
    liked_tiles: gr.Gallery
    unliked_tiles: gr.Gallery


def min_score_slider() -> gr.Slider:
    return gr.Slider(0.0, 1.0, value=0.0, step=0.01, elem_id="min-score",
                     label="Minimum score (cosine similarity; 0 shows every result)")


def min_score_of(value: float | None) -> float | None:
    """The slider's value as the search's ``min_score``: 0 (or nothing) means no cut."""
    return float(value) if value else None


def feedback_panel() -> FeedbackPanel:
    """Create the panel in the current layout context (under the results)."""
    with gr.Row():
        like = gr.Button("Like: more like this", size="sm", elem_id="like-button")
        unlike = gr.Button("Unlike: less like this", size="sm", elem_id="unlike-button")
        again = gr.Button("Search again with likes", size="sm", variant="primary",
                          elem_id="search-again")
        clear = gr.Button("Clear likes", size="sm", elem_id="clear-feedback")
    with gr.Row():
        liked_tiles = gr.Gallery(label="Liked", columns=6, height=110, format="jpeg",
                                 object_fit="contain", elem_id="liked", interactive=False)
        unliked_tiles = gr.Gallery(label="Unliked", columns=6, height=110, format="jpeg",
                                   object_fit="contain", elem_id="unliked", interactive=False)
    return FeedbackPanel(like, unlike, again, clear, gr.State([]), gr.State([]),
                         liked_tiles, unliked_tiles)


def mark(
    kind: str, point_id: str, liked: list[str], unliked: list[str]
) -> tuple[list[str], list[str]]:
    """``point_id`` added to the ``kind`` list (and taken off the other one)."""
    point_id = (point_id or "").strip()
    if not point_id:
        raise gr.Error("Click a result first, then Like or Unlike.", title="No image selected")
    liked = [i for i in liked if i != point_id]
    unliked = [i for i in unliked if i != point_id]
    (liked if kind == LIKE else unliked).append(point_id)
    return liked, unliked


def select_tile(ids: list[str], event: gr.SelectData) -> tuple[str, str]:
    """The clicked tile's id, for the point-id box and for the selection state."""
    point_id = pick_id(ids, event)
    return point_id, point_id


def selects_into(gallery: gr.Gallery, ids: gr.State, point_id: gr.Textbox,
                 selected: gr.State) -> None:
    """A click on a tile of ``gallery`` (point ids ``ids``) fills ``point_id`` and
    ``selected``, queued before any Like or Unlike pressed after it."""
    gallery.select(select_tile, ids, [point_id, selected], api_name=False,
                   concurrency_id=SELECTION)


def wire_feedback(
    panel: FeedbackPanel,
    images: CollectionImages,
    selected: gr.State,
    point_id: gr.Textbox,
    search: Callable[..., Any],
    inputs: list[Any],
    outputs: list[Any],
) -> None:
    """Connect the panel: Like / Unlike take ``selected`` (filled by :func:`selects_into`),
    else the id in ``point_id`` (an API call's argument); ``search(query, *inputs, liked,
    unliked)`` runs a search again."""
    point_id.input(str.strip, point_id, selected, api_name=False, concurrency_id=SELECTION)

    def tiles(ids: list[str]) -> Thumbs:
        return [(images.thumbnail(i), i) for i in ids]

    def marked(kind: str) -> Callable[..., tuple[Any, ...]]:
        def handler(chosen: str, pid: str, liked: list[str],
                    unliked: list[str]) -> tuple[Any, ...]:
            liked, unliked = mark(kind, chosen or pid, liked, unliked)
            return liked, unliked, tiles(liked), tiles(unliked)
        return handler

    state = [panel.liked, panel.unliked, panel.liked_tiles, panel.unliked_tiles]
    panel.like.click(marked(LIKE), [selected, point_id, panel.liked, panel.unliked], state,
                     api_name="like", concurrency_id=SELECTION)
    panel.unlike.click(marked(UNLIKE), [selected, point_id, panel.liked, panel.unliked], state,
                       api_name="unlike", concurrency_id=SELECTION)
    panel.clear.click(lambda: ([], [], [], []), None, state, api_name=False)
    panel.again.click(search, [*inputs, panel.liked, panel.unliked], outputs,
                      api_name="search_again", concurrency_id="search")
