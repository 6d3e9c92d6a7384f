"""Images the page may show: only files stored in the collection, looked up by point id.

No request ever names a file. The page sends a point id; the file is found from that
point's ``locations`` (the first whose file exists), must lie inside its ingested root, and
its thumbnail
comes from the shared on-disk cache (:class:`~service.thumbnails.ThumbnailCache`), the
same files the REST API serves. Each cache file is written once, atomically, before the
page names it, and Gradio serves it in place (a static path: never copied, never
rewritten while a response reads it).
"""

from __future__ import annotations

import gradio as gr
from PIL import Image, ImageDraw, ImageFont

from service.config import Settings
from service.errors import ImageDecodeError, PointNotFoundError
from service.locations import existing_files, locations_of
from service.store.base import VectorStore
from service.thumbnails import DEFAULT_THUMBNAIL_SIZE, ThumbnailCache, write_once

THUMBNAIL_SIDE = DEFAULT_THUMBNAIL_SIZE
CLUSTER_GRID_LIMIT = 60  # images of one cluster the page shows


class CollectionImages:
    """Thumbnail files of stored images by point id, for Gradio to serve."""

    def __init__(self, store: VectorStore, settings: Settings,
                 cache: ThumbnailCache | None = None) -> None:
        self.store = store
        self.settings = settings
        self.cache = cache or ThumbnailCache(store, settings)
        self.cache.root.mkdir(parents=True, exist_ok=True)
        gr.set_static_paths([self.cache.root])

    def thumbnail(self, point_id: str, side: int = THUMBNAIL_SIDE) -> str:
        """The thumbnail file of stored point ``point_id``."""
        return str(self.cache.get(point_id, side).path)

    def preview(self, point_id: str) -> str:
        """Like :meth:`thumbnail`, with a labelled placeholder when the file cannot be shown."""
        records = self.store.retrieve([point_id])
        if not records:
            raise PointNotFoundError(f"no image with id {point_id} in the collection")
        return self.tile(point_id, records[0].payload, "")[0]

    def tile(self, point_id: str, payload: dict, caption: str,
             side: int = THUMBNAIL_SIDE) -> tuple[str, str]:
        """A gallery tile; a labelled placeholder when the stored file is gone or unreadable.

        A result whose file vanished since the last sync is still a valid match (its vectors
        are stored), so it is shown, marked, rather than dropped or failing the page.
        """
        try:
            return str(self.cache.from_payload(point_id, payload, side).path), caption
        except ImageDecodeError:
            missing = not existing_files(locations_of(payload))
            reason = "file missing" if missing else "file unreadable"
            return self._placeholder(reason), f"{caption} ({reason})".strip()

    def _placeholder(self, reason: str) -> str:
        path = self.cache.root / f"{reason.replace(' ', '-')}.jpg"
        if not path.is_file():
            write_once(path, placeholder(reason))
        return str(path)


def pick_id(ids: list[str], event: gr.SelectData) -> str:
    """The point id of the gallery tile the user clicked."""
    index = event.index if isinstance(event.index, int) else event.index[0]
    return ids[index] if 0 <= index < len(ids) else ""


def placeholder(text: str, side: int = THUMBNAIL_SIDE) -> Image.Image:
    """A grey tile with ``text`` across it, for an image that cannot be shown."""
    tile = Image.new("RGB", (side, side), (214, 214, 214))
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=max(12, side // 12))
    box = draw.textbbox((0, 0), text, font=font)
    position = ((side - (box[2] - box[0])) / 2, (side - (box[3] - box[1])) / 2)
    draw.rectangle((0, 0, side - 1, side - 1), outline=(150, 150, 150), width=3)
    draw.text(position, text, fill=(90, 90, 90), font=font)
    return tile
