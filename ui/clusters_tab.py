"""The Clusters tab: one card per cluster to browse, open, name and show on the map.

Each card shows the cluster's name or number, its size and a strip of its most
representative images (its medoid and the images nearest it, from
:mod:`service.cluster_overview`); the noise images have their own card. Clicking a card
opens the cluster below the cards: its images, a box to name it (stored by
:mod:`service.cluster_names`, so the name shows in search results, the CLI and the API and
works as a filter) and a button that shows it on the Map tab. The run's own fields are
folded away in an accordion.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import gradio as gr

from service.cluster_names import name_cluster
from service.cluster_overview import NOISE, ClusterCard, cluster_cards
from service.store.base import PointFilter
from ui.images import CLUSTER_GRID_LIMIT, CollectionImages
from ui.steering import selects_into

CARD_SIDE = 128
CARD_LIMIT = 60  # cards shown (largest clusters first); the noise card is always shown
FILE_URL = "gradio_api/file="  # Gradio's route for files under its static paths

CSS = """
.cluster-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
  gap: 10px; }
.cluster-card { border: 1px solid #d6d6d6; border-radius: 10px; padding: 8px 10px;
  cursor: pointer; background: #fff; }
.cluster-card:hover { border-color: #1f77b4; box-shadow: 0 1px 6px rgba(31,119,180,.3); }
.cluster-card.open { border-color: #1f77b4; border-width: 2px; }
.cluster-card h4 { margin: 0 0 4px; font-size: 15px; }
.cluster-card .size { color: #666; font-size: 13px; margin-left: 6px; font-weight: normal; }
.cluster-card .strip { display: flex; gap: 3px; overflow: hidden; }
.cluster-card .strip img { width: 52px; height: 52px; object-fit: cover; border-radius: 4px; }
.cluster-note { color: #666; font-size: 13px; margin-top: 6px; }
"""
# A click opens the cluster here and filters the map to it (shown on the Map tab).
CARD_SCRIPT = """
element.addEventListener('click', (event) => {
  const card = event.target.closest('.cluster-card');
  if (!card) return;
  window.__simimgMapFilter = card.dataset.cluster;
  window.dispatchEvent(new CustomEvent('simimg-map-filter', {detail: card.dataset.cluster}));
  trigger('click', {cluster: card.dataset.cluster});
});
"""
# "Show on the map": the map's script listens for this event (ui/map_tab.js).
SHOW_ON_MAP = """(cluster) => {
  window.__simimgMapFilter = cluster;  // read by the map when it loads later
  window.dispatchEvent(new CustomEvent('simimg-map-filter', {detail: cluster}));
  const tab = [...document.querySelectorAll('button[role=tab]')]
    .find((b) => b.innerText.trim() === 'Map');
  if (tab) tab.click();
  return [];
}"""


class ClustersView:
    """Handlers of the tab, bound to the page's store, settings and images."""

    def __init__(self, page: Any, errors: Callable[[], AbstractContextManager[None]]) -> None:
        self.page = page
        self.errors = errors
        self.images: CollectionImages = page.images

    def cards_html(self, opened: str | None = None) -> str:
        """Every card (largest clusters first, noise last) as HTML."""
        with self.errors():
            cards = cluster_cards(self.page.settings, self.page.store)
        if not cards:
            return ("<p><b>No clusters yet.</b> Run <code>simimg-admin cluster</code> to group "
                    "the collection.</p>")
        shown = [c for c in cards if c.cluster != NOISE][:CARD_LIMIT]
        shown += [c for c in cards if c.cluster == NOISE]
        ids = [point_id for card in shown for point_id in card.representatives]
        with ThreadPoolExecutor(max_workers=2) as pool:
            urls = dict(zip(ids, pool.map(self._thumbnail_url, ids), strict=True))
        parts = [_card(card, urls, str(card.cluster) == str(opened)) for card in shown]
        hidden = len(cards) - len(shown)
        note = (f'<p class="cluster-note">{hidden} smaller clusters are not shown as cards: '
                "pick them by number in the Search tab's filter.</p>" if hidden else "")
        return f'<div class="cluster-cards">{"".join(parts)}</div>{note}'

    def _thumbnail_url(self, point_id: str) -> str:
        records = self.page.store.retrieve([point_id])
        payload = records[0].payload if records else {}
        return FILE_URL + self.images.tile(point_id, payload, "", CARD_SIDE)[0]

    def open(self, evt: gr.EventData) -> tuple[Any, ...]:
        """A card was clicked: its title, name box, images; the cards with it marked."""
        cluster = str((evt._data or {}).get("cluster", ""))
        return self.show(cluster)

    def show(self, cluster: str) -> tuple[Any, ...]:
        card = self._card(cluster)
        if card is None:
            raise gr.Error(f"there is no cluster {cluster} now: press Refresh")
        shown = min(card.size, CLUSTER_GRID_LIMIT)
        more = "" if card.size <= shown else f" (the first {shown} shown)"
        title = f"### {card.title}: {card.size} images{more}"
        naming = gr.update(value=card.name or "", interactive=card.cluster != NOISE)
        return title, naming, str(card.cluster), self.cards_html(str(card.cluster))

    def save_name(self, cluster: str, name: str) -> tuple[Any, ...]:
        """Store the name given in the box ("" removes it) and show it everywhere."""
        if not cluster:
            raise gr.Error("Open a cluster first (click its card).")
        with self.errors():
            name_cluster(self.page.settings, self.page.store, int(cluster), name or "")
        return (*self.show(cluster), gr.update(choices=self.page.cluster_choices()))

    def _card(self, cluster: str) -> ClusterCard | None:
        with self.errors():
            cards = cluster_cards(self.page.settings, self.page.store)
        return next((c for c in cards if str(c.cluster) == str(cluster)), None)

    def unlabelled_note(self) -> str:
        count = self.page.store.count(PointFilter(unlabelled=True))
        if not count:
            return ""
        return (f"{count} images were added after the last clustering run and are in no "
                "card yet: run `simimg-admin cluster` again to include them.")


def _card(card: ClusterCard, urls: dict[str, str], opened: bool) -> str:
    strip = "".join(f'<img src="{html.escape(urls[i])}" alt="" loading="lazy">'
                    for i in card.representatives)
    noun = "image" if card.size == 1 else "images"
    return (f'<div class="cluster-card{" open" if opened else ""}" '
            f'data-cluster="{card.cluster}" title="Open this cluster">'
            f'<h4>{html.escape(card.title)}<span class="size">{card.size} {noun}</span></h4>'
            f'<div class="strip">{strip}</div></div>')


@dataclass
class ClustersTab:
    view: ClustersView
    refresh: gr.Button
    summary: gr.Markdown
    cards: gr.HTML
    note: gr.Markdown


def clusters_tab(page: Any, errors: Callable[[], AbstractContextManager[None]],
                 point_id: gr.Textbox, selected: gr.State,
                 search_filter: gr.Dropdown) -> ClustersTab:
    """Build the tab inside the current ``gr.Tab``. ``point_id`` / ``selected``: the Search
    tab's box and selection that a clicked image fills; ``search_filter``: its cluster
    filter (refreshed after naming)."""
    view = ClustersView(page, errors)
    with gr.Row():
        note = gr.Markdown(elem_id="clusters-note")
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="clusters-refresh")
    cards = gr.HTML("", css_template=CSS, js_on_load=CARD_SCRIPT, elem_id="cluster-cards",
                    apply_default_css=False)
    title = gr.Markdown("Click a card to open its cluster.", elem_id="cluster-title")
    with gr.Row():
        name = gr.Textbox(label="Name this cluster (shown wherever its number is; empty "
                          "removes it)", elem_id="cluster-name", scale=3, interactive=False)
        save = gr.Button("Save name", elem_id="cluster-name-save", scale=1)
        on_map = gr.Button("Show on the map", elem_id="cluster-on-map", scale=1)
    grid = gr.Gallery(label="Images in this cluster (click one to use it as the query)",
                      format="jpeg", columns=6, object_fit="cover", height="auto",
                      elem_id="cluster-grid", interactive=False)
    with gr.Accordion("Run details", open=False):
        summary = gr.Markdown(elem_id="clusters-summary")
    ids = gr.State([])
    current = gr.Textbox(visible="hidden", elem_id="cluster-current")
    opened = [title, name, current, cards]
    cards.click(view.open, None, opened, api_name=False)
    # The grid follows the opened cluster (also an API endpoint: the first images of one).
    current.change(page.cluster_members, current, [grid, ids], api_name="cluster_members")
    save.click(view.save_name, [current, name], [*opened, search_filter],
               api_name="name_cluster")
    name.submit(view.save_name, [current, name], [*opened, search_filter], api_name=False)
    on_map.click(None, current, None, js=SHOW_ON_MAP)
    selects_into(grid, ids, point_id, selected)
    gr.on([refresh.click], view.cards_html, None, cards, api_name=False)
    gr.on([refresh.click], view.unlabelled_note, None, note, api_name=False)
    return ClustersTab(view=view, refresh=refresh, summary=summary, cards=cards, note=note)
