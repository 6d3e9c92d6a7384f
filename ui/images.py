"""Images the page may show: only files stored in the collection, looked up by point id.

No request ever names a file. The page sends a point id; the file is found from that
point's ``locations`` (the first whose file exists), must lie inside its ingested root, and
is decoded through the shared decoder into a PIL thumbnail, so Gradio never serves a
collection path.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from threading import Lock

from PIL import Image, ImageDraw, ImageFont

from service.config import Settings
from service.errors import ConfigError, ImageDecodeError
from service.locations import existing_files, locations_of, stored_file
from service.pipeline import decode_file
from service.store.base import VectorStore

THUMBNAIL_SIDE = 320


class CollectionImages:
    """Thumbnails of stored images by point id, with a small in-memory cache."""

    def __init__(self, store: VectorStore, settings: Settings, cache_size: int = 512) -> None:
        self.store = store
        self.settings = settings
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], Image.Image] = OrderedDict()
        self._lock = Lock()

    def thumbnail(self, point_id: str, side: int = THUMBNAIL_SIDE) -> Image.Image:
        """The image of stored point ``point_id``, at most ``side`` pixels on its long side."""
        records = self.store.retrieve([point_id])
        if not records:
            raise ConfigError(f"no image with id {point_id} in the collection")
        return self.from_payload(point_id, records[0].payload, side)

    def from_payload(
        self, point_id: str, payload: dict, side: int = THUMBNAIL_SIDE
    ) -> Image.Image:
        """Thumbnail of a point whose payload came from the store (a hit or a record)."""
        key = (point_id, side)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        image = self._load(stored_file(payload), side)
        with self._lock:
            self._cache[key] = image
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image

    def _load(self, file: Path, side: int) -> Image.Image:
        _, decoded = decode_file(file, self.settings, min_side=side, source=file.name)
        image = decoded.image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        return image

    def preview(self, point_id: str) -> Image.Image:
        """Like :meth:`thumbnail`, with a labelled placeholder when the file cannot be shown."""
        records = self.store.retrieve([point_id])
        if not records:
            raise ConfigError(f"no image with id {point_id} in the collection")
        return self.tile(point_id, records[0].payload, "")[0]

    def tile(self, point_id: str, payload: dict, caption: str) -> tuple[Image.Image, str]:
        """A gallery tile; a labelled placeholder when the stored file is gone or unreadable.

        A result whose file vanished since the last sync is still a valid match (its vectors
        are stored), so it is shown, marked, rather than dropped or failing the page.
        """
        try:
            return self.from_payload(point_id, payload), caption
        except ImageDecodeError:
            missing = not existing_files(locations_of(payload))
            reason = "file missing" if missing else "file unreadable"
            return placeholder(reason), f"{caption} ({reason})"


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
