"""The Gradio page: Search, Clusters, Duplicates and Status tabs on the shared :class:`Searcher`.

Nothing here embeds, ranks or stores: every search goes through ``Searcher.search`` /
``Searcher.search_by_id``, the functions behind ``simimg-admin search``. Result and
cluster images are thumbnails of stored points from the shared cache (:mod:`ui.images`),
so no collection path is ever served and ``allowed_paths`` stays empty. Uploads are read
through the same size limit and decoder as ingest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from PIL import Image

from service.cluster_names import cluster_names, resolve_cluster
from service.config import Settings
from service.errors import ModelNotTrainedError, SimimgError
from service.images import decode_image
from service.pipeline import read_image_bytes
from service.search import FUSED, Searcher, SearchResult
from service.store.base import PointFilter
from service.store.schema import SPACES, VECTOR_AUTOENCODER
from service.thumbnails import ThumbnailCache
from ui.clusters_tab import clusters_tab
from ui.duplicates import duplicates_tab
from ui.filters import filter_controls, filters_from
from ui.images import CLUSTER_GRID_LIMIT, THUMBNAIL_SIDE, CollectionImages
from ui.map_tab import map_tab
from ui.steering import (
    feedback_panel,
    min_score_of,
    min_score_slider,
    selects_into,
    wire_feedback,
)
from ui.views import (
    ALL,
    cluster_choices,
    clusters_markdown,
    result_caption,
    result_rows,
    status_markdown,
    stored_cluster_sizes,
)

SPACE_CHOICES = [
    ("MobileNet", "mobilenet"),
    ("Autoencoder", VECTOR_AUTOENCODER),
    ("Fused (both rankings)", FUSED),
]
DEFAULT_K = 6
MAX_UI_K = 100
# Images the page sends are RGB thumbnails: JPEG encodes ~30x faster than Gradio's WebP.
TILE_FORMAT = "jpeg"

Gallery = list[tuple[str, str]]  # (thumbnail file, caption)


def query_image(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` (upload, paste) whose handler gets the uploaded file unopened.

    Gradio's own ``Image.preprocess`` opens the file with PIL and fails with a bare
    exception on a non-image; here the simimg decoder does that and says why. Gradio has
    already checked that the path is one of its own uploads before ``preprocess`` runs.
    (Overridden on the instance: a ``gr.Image`` subclass would make Gradio write a
    ``.pyi`` stub next to this module.)
    """
    image = gr.Image(type="filepath", **kwargs)
    decode_data_url = image.preprocess

    def preprocess(payload: FileData | None) -> str | None:
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return decode_data_url(payload)  # type: ignore[return-value]
        return payload.path

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


class SearchPage:
    """Event handlers of the page, bound to one searcher and its store."""

    def __init__(
        self, searcher: Searcher, settings: Settings, thumbnails: ThumbnailCache | None = None
    ) -> None:
        self.searcher = searcher
        self.settings = settings
        self.store = searcher.store
        self.images = CollectionImages(searcher.store, settings, thumbnails)

    # -- search ----------------------------------------------------------------------

    def search_upload(
        self, image: str | None, space: str, k: float, cluster: str | None,
        min_score: float | None = None, after: str = "", before: str = "", camera: str = "",
        label: str = "", folder: str = "", like: list[str] | None = None,
        unlike: list[str] | None = None,
    ) -> tuple[Gallery, Any, list[dict[str, Any]], list[str]]:
        """Search with an uploaded or pasted image file, steered by liked/unliked results."""
        if not image and not like:
            raise gr.Error("Upload, paste or pick an image first (or like a result).",
                           title="No query image")
        with user_errors():
            data = read_image_bytes(Path(image), self.settings.max_file_bytes) if image else None
            results = self.searcher.search(data, space, _k(k),
                                           resolve_cluster(self.settings, cluster),
                                           filters=filters_from(after, before, camera, label,
                                                                folder),
                                           like=like or (), unlike=unlike or (),
                                           min_score=min_score_of(min_score))
            query = self._reconstruction_input(space, data) if data else None
            return self._outputs(results, space, query)

    def search_by_id(
        self, point_id: str, space: str, k: float, cluster: str | None,
        min_score: float | None = None, *filters: str,
    ) -> tuple[str, Gallery, Any, list[dict[str, Any]], list[str]]:
        """Search with a stored image's own vectors (picked from the collection)."""
        point_id = (point_id or "").strip()
        if not point_id:
            raise gr.Error("Pick an image from the results or a cluster first.")
        with user_errors():
            results = self.searcher.search_by_id(point_id, space, _k(k),
                                                 resolve_cluster(self.settings, cluster),
                                                 filters_from(*filters),
                                                 min_score=min_score_of(min_score))
            query_file = self.images.preview(point_id)
            query = None
            if space == VECTOR_AUTOENCODER:
                with Image.open(query_file) as opened:
                    query = opened.convert("RGB")
            return (query_file, *self._outputs(results, space, query))

    def _reconstruction_input(self, space: str, data: bytes) -> Image.Image | None:
        if space != VECTOR_AUTOENCODER:
            return None
        return decode_image(data, max_pixels=self.settings.max_pixels, source="upload").image

    def _outputs(
        self, results: list[SearchResult], space: str, query: Image.Image | None
    ) -> tuple[Gallery, Any, list[dict[str, Any]], list[str]]:
        gallery = [self.images.tile(r.id, r.payload, result_caption(r)) for r in results]
        reconstruction = self._reconstruct(query) if space == VECTOR_AUTOENCODER else None
        return (
            gallery,
            gr.update(value=reconstruction, visible=reconstruction is not None),
            result_rows(results),
            [r.id for r in results],
        )

    def _reconstruct(self, image: Image.Image | None) -> Image.Image | None:
        if image is None:
            return None
        embedder = self.searcher.pipeline.embedder(VECTOR_AUTOENCODER)
        reconstruct = getattr(embedder, "reconstruct", None)
        if reconstruct is None:
            return None
        side = min(THUMBNAIL_SIDE, max(image.size))
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return reconstruct(image).resize(size, Image.Resampling.BICUBIC)

    # -- clusters and status ---------------------------------------------------------

    def cluster_choices(self, with_all: bool = True) -> list[tuple[str, str]]:
        """Cluster filter choices from the labels stored now."""
        with user_errors():
            return cluster_choices(stored_cluster_sizes(self.store), with_all,
                                   cluster_names(self.settings))

    def cluster_options(self) -> Any:
        """Fresh choices for the search filter."""
        return gr.update(choices=self.cluster_choices(), value=ALL)

    def clusters_summary(self) -> str:
        from service.clustering_runs import current_run

        with user_errors():
            return clusters_markdown(current_run(self.settings), stored_cluster_sizes(self.store))

    def cluster_members(self, cluster: str | None) -> tuple[Gallery, list[str]]:
        """Up to CLUSTER_GRID_LIMIT images of one cluster (or of the noise points)."""
        with user_errors():
            label = resolve_cluster(self.settings, cluster)
            if label is None:
                return [], []
            records = []
            for page in self.store.scroll(batch_size=CLUSTER_GRID_LIMIT,
                                          where=PointFilter(cluster=label)):
                records.extend(page)
                if len(records) >= CLUSTER_GRID_LIMIT:
                    break
            records = records[:CLUSTER_GRID_LIMIT]
            gallery = [self.images.tile(r.id, r.payload, str(r.payload.get("path")))
                       for r in records]
            return gallery, [r.id for r in records]

    def status(self) -> str:
        from service.status import collection_status

        with user_errors():
            info = collection_status(self.settings, self.store)
        models = {space: self.searcher.pipeline.model_id(space) for space in SPACES}
        return status_markdown(info, self.settings, models)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a SimimgError as its one-line message on the page (and in API errors)."""
    try:
        yield
    except ModelNotTrainedError as exc:
        raise gr.Error(str(exc), title="Autoencoder not trained") from None
    except SimimgError as exc:
        raise gr.Error(str(exc), title="simimg") from None


def _k(value: float | int | None) -> int:
    return DEFAULT_K if value is None else int(value)


def build_app(
    searcher: Searcher, settings: Settings, thumbnails: ThumbnailCache | None = None
) -> gr.Blocks:
    """The page for ``searcher``; launch it with :func:`launch` or :func:`mount`."""
    page = SearchPage(searcher, settings, thumbnails)
    with gr.Blocks(title="simimg", analytics_enabled=False) as demo:
        gr.Markdown("## simimg: find similar images in your collection")
        with gr.Tab("Search"):
            search = _search_tab(page)
        with gr.Tab("Clusters"):
            clusters = clusters_tab(page, user_errors, search.point_id, search.selected,
                                    search.cluster)
        with gr.Tab("Map"):
            map_tab(page)
        with gr.Tab("Duplicates"):
            duplicates_tab(page, user_errors)
        with gr.Tab("Status") as status_tab:
            status_md = gr.Markdown(elem_id="status")
            refresh = gr.Button("Refresh", size="sm")
        gr.on([demo.load, refresh.click, status_tab.select], page.status, None, status_md,
              api_name="status")
        gr.on([demo.load, clusters.refresh.click], page.cluster_options, None,
              search.cluster, api_name=False)
        gr.on([demo.load, clusters.refresh.click], page.clusters_summary, None,
              clusters.summary, api_name="clusters")
        gr.on([demo.load], clusters.view.cards_html, None, clusters.cards, api_name=False)
        gr.on([demo.load], clusters.view.unlabelled_note, None, clusters.note, api_name=False)
    return demo


@dataclass
class _SearchTab:
    cluster: gr.Dropdown
    point_id: gr.Textbox
    selected: gr.State


def _search_tab(page: SearchPage) -> _SearchTab:
    with gr.Row():
        with gr.Column(scale=1):
            query = query_image(
                label="Query image (upload or paste)",
                sources=["upload", "clipboard"], elem_id="query", height=320,
                format=TILE_FORMAT,
            )
            space = gr.Radio(SPACE_CHOICES, value="mobilenet", label="Vector space",
                             elem_id="space")
            k = gr.Number(DEFAULT_K, label="k (number of results)", precision=0,
                          minimum=1, maximum=MAX_UI_K, elem_id="k")
            # Custom values: labels from a newer clustering run work before a page reload.
            cluster = gr.Dropdown(page.cluster_choices(), value=ALL, label="Cluster filter",
                                  elem_id="cluster-filter", interactive=True,
                                  allow_custom_value=True)
            min_score = min_score_slider()
            filters = filter_controls()
            button = gr.Button("Search", variant="primary", elem_id="search-button")
            with gr.Accordion("Pick a query from the collection", open=False):
                point_id = gr.Textbox(label="Point id (click any result or cluster image)",
                                      elem_id="point-id")
                by_id = gr.Button("Search with this stored image", elem_id="search-by-id")
            reconstruction = gr.Image(label="Autoencoder reconstruction of the query",
                                      format=TILE_FORMAT,
                                      visible=False, interactive=False,
                                      elem_id="reconstruction")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Most similar (score · path)", columns=3, format=TILE_FORMAT,
                                 object_fit="contain", height="auto", elem_id="results",
                                 interactive=False)
            feedback = feedback_panel()
            with gr.Accordion("Results as data", open=False):
                rows = gr.JSON(label="results", elem_id="results-json")
    ids = gr.State([])
    inputs = [space, k, cluster, min_score, *filters]
    outputs = [gallery, reconstruction, rows, ids]
    button.click(page.search_upload, [query, *inputs], outputs, api_name="search",
                 concurrency_id="search")
    query.upload(page.search_upload, [query, *inputs], outputs, api_name=False,
                 concurrency_id="search")
    by_id.click(page.search_by_id, [point_id, *inputs], [query, *outputs],
                api_name="search_by_id", concurrency_id="search")
    selected = gr.State("")  # the image clicked last, here or in the Clusters tab
    selects_into(gallery, ids, point_id, selected)
    wire_feedback(feedback, page.images, selected, point_id, page.search_upload,
                  [query, *inputs], outputs)
    return _SearchTab(cluster=cluster, point_id=point_id, selected=selected)


THEME = gr.themes.Default(
    font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def launch(
    demo: gr.Blocks,
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> None:
    """Serve ``demo`` on ``host:port``: uploads capped at ``max_file_bytes``, no file paths."""
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        **_serving_options(settings),
    )


def mount(app: Any, demo: gr.Blocks, settings: Settings, path: str = "/") -> Any:
    """Mount ``demo`` on a FastAPI ``app`` at ``path``, served like :func:`launch` does."""
    demo.queue(default_concurrency_limit=1)
    return gr.mount_gradio_app(app, demo, path=path, **_serving_options(settings))


def _serving_options(settings: Settings) -> dict[str, Any]:
    return {"max_file_size": settings.max_file_bytes, "show_error": True, "ssr_mode": False,
            "allowed_paths": [], "theme": THEME}
