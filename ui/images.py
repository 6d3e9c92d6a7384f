"""Images the page may show: only files stored in the collection, looked up by point id.

No request ever names a file. The page sends a point id; the file is found from that
point's payload (``root`` / ``path``), must lie inside its ingested root, and its thumbnail
comes from the shared on-disk cache (:class:`~service.thumbnails.ThumbnailCache`), the
same files the REST API serves. Each cache file is written once, atomically, before the
page names it, and Gradio serves it in place (a static path: never copied, never
rewritten while a response reads it).
"""

from __future__ import annotations

import gradio as gr
from PIL import Image

from service.config import Settings
from service.errors import ImageDecodeError
from service.store.base import VectorStore
from service.thumbnails import DEFAULT_THUMBNAIL_SIZE, ThumbnailCache, write_once

THUMBNAIL_SIDE = DEFAULT_THUMBNAIL_SIZE


class CollectionImages:
    """Thumbnail files of stored images by point id, for Gradio to serve."""

    def __init__(self, store: VectorStore, settings: Settings,
                 cache: ThumbnailCache | None = None) -> None:
        self.store = store
        self.settings = settings
        self.cache = cache or ThumbnailCache(store, settings)
        self.cache.root.mkdir(parents=True, exist_ok=True)
        gr.set_static_paths([self.cache.root])
        self._unavailable = self.cache.root / "unavailable.jpg"

    def thumbnail(self, point_id: str, side: int = THUMBNAIL_SIDE) -> str:
        """The thumbnail file of stored point ``point_id``."""
        return str(self.cache.get(point_id, side).path)

    def tile(self, point_id: str, payload: dict, caption: str) -> tuple[str, str]:
        """A gallery tile; a grey square when the stored file is gone or unreadable."""
        try:
            return str(self.cache.from_payload(point_id, payload, THUMBNAIL_SIDE).path), caption
        except ImageDecodeError:
            return self._grey(), f"{caption} (file unavailable)"

    def _grey(self) -> str:
        if not self._unavailable.is_file():
            grey = Image.new("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE), (200, 200, 200))
            write_once(self._unavailable, grey)
        return str(self._unavailable)
