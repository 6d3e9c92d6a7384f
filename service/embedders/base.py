"""The embedder protocol shared by the MobileNet and autoencoder spaces."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image


class Embedder(Protocol):
    """Preprocess one decoded image, then embed a stacked batch of them."""

    space: str  # the named vector this embedder fills
    dim: int
    model_id: str  # identifies weights + preprocessing; changes when either changes
    min_side: int  # shortest image side preprocessing needs (a JPEG draft-decoding hint)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB image -> float32 array ready to stack into a batch."""
        ...

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """(n, ...) float32 batch -> (n, dim) float32, each row of unit length."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
