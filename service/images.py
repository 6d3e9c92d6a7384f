"""Image decoding: the single entry point from bytes to a clean RGB picture.

Every caller (ingest, queries, training, the UI) decodes through :func:`decode_image`, so
EXIF orientation, first-frame selection, colour-mode conversion and the decompression-bomb
guard behave the same everywhere.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import ImageDecodeError, ImageTooLargeError
from service.exif import exif_of

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"})
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)

# We enforce our own pixel limit before decoding; PIL's global guard is disabled so that
# the limit is one configurable number rather than two.
Image.MAX_IMAGE_PIXELS = None

_ROTATING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height

# Longest side / shortest side kept. Preprocessing scales the shortest side up to a few
# hundred pixels, so a 1x40000 strip (a 90-byte PNG) would become a 10-gigabyte image; the
# centre of such a strip is kept instead. Square centre crops never see the cut part.
MAX_ASPECT = 64


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image plus facts about the original file."""

    image: Image.Image
    width: int  # original pixel size, after EXIF orientation
    height: int
    format: str
    exif: Image.Exif | None = None  # parsed from the header while decoding (see service.exif)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    min_side: int | None = None,
    source: str = "image",
) -> DecodedImage:
    """Decode ``data`` to RGB, or raise :class:`ImageDecodeError` naming ``source``.

    ``min_side``: the shortest side the caller needs. Large JPEGs are then decoded with
    ``Image.draft`` at a reduced DCT scale that still keeps at least that many pixels, which
    makes them several times cheaper to decode.
    """
    if not data:
        raise ImageDecodeError(f"{source}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode(data, max_pixels=max_pixels, min_side=min_side, source=source)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{source}: not a recognised image file") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError,
            EOFError, struct.error, MemoryError, ZeroDivisionError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise ImageDecodeError(f"{source}: cannot decode image ({reason})") from None


def _decode(data: bytes, *, max_pixels: int, min_side: int | None, source: str) -> DecodedImage:
    img = Image.open(io.BytesIO(data))
    fmt = img.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        raise ImageDecodeError(f"{source}: unsupported image format {fmt}")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{source}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{source}: {width}x{height} pixels exceeds the limit of {max_pixels:,} "
            "(SIMIMG_MAX_PIXELS)"
        )
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    exif = exif_of(img)
    orientation = _orientation(exif)
    if orientation in _ROTATING_ORIENTATIONS:
        width, height = height, width
    if min_side and fmt in ("JPEG", "MPO"):
        _apply_draft(img, min_side)
    img.load()
    if orientation not in (None, 1):
        img = ImageOps.exif_transpose(img)
    return DecodedImage(image=to_rgb(_limit_aspect(img)), width=width, height=height, format=fmt,
                        exif=exif)


def _limit_aspect(img: Image.Image) -> Image.Image:
    """The centre of ``img`` with at most :data:`MAX_ASPECT` : 1 sides (itself if within)."""
    width, height = img.size
    if max(width, height) <= MAX_ASPECT * min(width, height):
        return img
    if width > height:
        keep = MAX_ASPECT * height
        left = (width - keep) // 2
        return img.crop((left, 0, left + keep, height))
    keep = MAX_ASPECT * width
    top = (height - keep) // 2
    return img.crop((0, top, width, top + keep))


def _orientation(exif: Image.Exif | None) -> int | None:
    value = exif.get(0x0112) if exif is not None else None
    return value if isinstance(value, int) else None


def _apply_draft(img: Image.Image, min_side: int) -> None:
    width, height = img.size
    scale = min_side / min(width, height)
    if scale >= 1:
        return
    img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _high_depth_to_l(img)
        mode = img.mode
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float greyscale to 8-bit by stretching the used range."""
    array = np.asarray(img, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        scaled = np.zeros(array.shape, dtype=np.uint8)
    else:
        scaled = ((array - low) * (255.0 / (high - low))).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")
