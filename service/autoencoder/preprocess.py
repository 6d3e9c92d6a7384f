"""Image -> autoencoder input, identical at training and at embedding time."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_square(image: Image.Image, size: int) -> np.ndarray:
    """The whole image squashed to ``size`` x ``size`` (no crop): (size, size, 3) uint8.

    Training stores images in this form and :meth:`AutoencoderEmbedder.preprocess` uses it
    too, so the model sees identical pixels at training and at embedding time.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap: a cheap integer pre-shrink of large images, then an antialiased resize.
    small = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(small, dtype=np.uint8)


def to_model_input(pixels: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [0, 1]."""
    return np.ascontiguousarray(np.moveaxis(pixels, -1, -3), dtype=np.float32) / np.float32(255)
