"""The ``autoencoder`` space's embedder: the current (or a pending) checkpoint's encoder.

Loading imports torch (:mod:`service.autoencoder.model`); importing this module does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from service.autoencoder.config import AutoencoderConfig
from service.autoencoder.files import CURRENT, read_pointer
from service.autoencoder.preprocess import resize_square, to_model_input
from service.config import Settings
from service.embedders.base import l2_normalise
from service.errors import ConfigError, ModelNotTrainedError
from service.store.schema import VECTOR_AUTOENCODER

if TYPE_CHECKING:
    from service.autoencoder.model import ConvAutoencoder

NOT_TRAINED_MESSAGE = (
    "no autoencoder model is trained yet: run `simimg-admin train` first, "
    "or search with --space mobilenet"
)


class AutoencoderEmbedder:
    """The :class:`~service.embedders.base.Embedder` of the ``autoencoder`` space."""

    space = VECTOR_AUTOENCODER

    def __init__(self, model: ConvAutoencoder, version: str, meta: dict[str, Any]) -> None:
        self.model = model.eval()
        self.config: AutoencoderConfig = model.config
        self.model_id = version
        self.meta = meta

    @property
    def dim(self) -> int:
        return self.config.latent_dim

    @property
    def min_side(self) -> int:
        return self.config.image_size

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return to_model_input(resize_square(image, self.config.image_size))

    def embed(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            latent = self.model.embed(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
        return l2_normalise(latent.numpy())

    def reconstruct(self, image: Image.Image) -> Image.Image:
        """The model's reconstruction of ``image``: a square RGB image of the model's size.

        The model sees the whole image squashed to a square; resize the result to the
        original aspect ratio to compare the two side by side.
        """
        import torch

        batch = torch.from_numpy(self.preprocess(image)[None])
        with torch.inference_mode():
            out = self.model(batch)[0]
        pixels = (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def load_autoencoder_version(settings: Settings, version: str) -> AutoencoderEmbedder:
    """The embedder of a given checkpoint (current or pending)."""
    from service.autoencoder.model import load_model

    model, meta = load_model(settings, version)
    if model.config.latent_dim != settings.latent_dim:
        raise ConfigError(
            f"the autoencoder model {version} makes {model.config.latent_dim}-d vectors but "
            f"latent_dim is {settings.latent_dim}; set SIMIMG_LATENT_DIM to match the collection"
        )
    return AutoencoderEmbedder(model, version, meta)


def load_autoencoder_embedder(settings: Settings) -> AutoencoderEmbedder | None:
    """The current model's embedder, or None when no model has been made current."""
    version = read_pointer(settings, CURRENT)
    if version is None:
        return None
    return load_autoencoder_version(settings, version)


def require_autoencoder_embedder(settings: Settings) -> AutoencoderEmbedder:
    """Like :func:`load_autoencoder_embedder`, raising ModelNotTrainedError instead of None."""
    embedder = load_autoencoder_embedder(settings)
    if embedder is None:
        raise ModelNotTrainedError(NOT_TRAINED_MESSAGE)
    return embedder
