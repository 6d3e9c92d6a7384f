"""Embedders turn preprocessed image arrays into L2-normalised vectors, one per space."""

from service.embedders.base import Embedder, l2_normalise

__all__ = ["Embedder", "l2_normalise"]
