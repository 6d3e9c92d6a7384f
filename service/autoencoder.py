"""The ``autoencoder`` space: a convolutional autoencoder trained on the user's own images.

Checkpoints live under ``settings.models_dir / "autoencoder"``::

    <version>/model.pt         state dict (torch.save; loaded with weights_only=True)
    <version>/checkpoint.json  config, metrics, number of images, training-set fingerprint
    <version>/loss_curve.png   train / validation loss per epoch
    CURRENT                    the version ingest and search use
    PENDING                    a trained version whose re-embed has not finished yet

Version directories and pointer files are published whole (:mod:`service.atomic`), so a
crash never leaves a half-written checkpoint or pointer. Training code (``training/``)
writes checkpoints; this module only reads them, so ingest and search never import the
training package.

Importing this module does not import torch; loading a model does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from service.atomic import write_text_atomic
from service.config import Settings
from service.embedders.base import l2_normalise
from service.errors import ConfigError, ModelNotTrainedError, StoreError
from service.store.schema import VECTOR_AUTOENCODER

if TYPE_CHECKING:
    from service.autoencoder_model import ConvAutoencoder

ARCHITECTURE = "conv-ae-v1"
CURRENT = "CURRENT"
PENDING = "PENDING"
MODEL_FILE = "model.pt"
META_FILE = "checkpoint.json"
LOSS_CURVE_FILE = "loss_curve.png"
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = (16, 32, 64, 128)

NOT_TRAINED_MESSAGE = (
    "no autoencoder model is trained yet: run `simimg-admin train` first, "
    "or search with --space mobilenet"
)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Everything needed to rebuild the network and its preprocessing."""

    image_size: int = DEFAULT_IMAGE_SIZE
    latent_dim: int = 256
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.architecture != ARCHITECTURE:
            raise ConfigError(f"unknown autoencoder architecture {self.architecture!r}")
        if self.image_size % 16 or not 32 <= self.image_size <= 256:
            raise ConfigError(
                f"autoencoder image size must be a multiple of 16 from 32 to 256, "
                f"got {self.image_size}"
            )
        if not 2 <= self.latent_dim <= 4096:
            raise ConfigError(f"latent dim must be between 2 and 4096, got {self.latent_dim}")
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ConfigError(f"channels must be four positive widths, got {self.channels}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoencoderConfig:
        return cls(
            image_size=int(data["image_size"]),
            latent_dim=int(data["latent_dim"]),
            channels=tuple(data["channels"]),
            architecture=str(data.get("architecture", ARCHITECTURE)),
        )


# --------------------------------------------------------------------------- preprocessing


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


# --------------------------------------------------------------------------- files


def autoencoder_dir(settings: Settings) -> Path:
    return settings.models_dir / "autoencoder"


def checkpoint_dir(settings: Settings, version: str) -> Path:
    return autoencoder_dir(settings) / version


def read_pointer(settings: Settings, name: str) -> str | None:
    """The version a pointer file (CURRENT or PENDING) names, or None."""
    try:
        version = (autoencoder_dir(settings) / name).read_text().strip()
    except FileNotFoundError:
        return None
    return version or None


def write_pointer(settings: Settings, name: str, version: str) -> None:
    """Point ``name`` at ``version`` atomically."""
    write_text_atomic(autoencoder_dir(settings) / name, version + "\n")


def clear_pointer(settings: Settings, name: str) -> None:
    (autoencoder_dir(settings) / name).unlink(missing_ok=True)


def read_checkpoint_meta(settings: Settings, version: str) -> dict[str, Any]:
    """The checkpoint's metadata; raises StoreError when it is missing or damaged."""
    path = checkpoint_dir(settings, version) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"autoencoder checkpoint {path.parent} is missing or damaged ({exc}); "
            "run `simimg-admin train` again"
        ) from None
    if not isinstance(meta, dict):
        raise StoreError(f"autoencoder checkpoint {path} is damaged; run `simimg-admin train`")
    return meta


def current_model_info(settings: Settings) -> dict[str, Any] | None:
    """Metadata of the current model (for status), or None when no model is current."""
    version = read_pointer(settings, CURRENT)
    if version is None:
        return None
    info = read_checkpoint_meta(settings, version)
    folder = checkpoint_dir(settings, version)
    info.update(version=version, path=str(folder))
    curve = folder / LOSS_CURVE_FILE
    info["loss_curve"] = str(curve) if curve.is_file() else None
    pending = read_pointer(settings, PENDING)
    info["pending"] = pending if pending != version else None
    return info


# --------------------------------------------------------------------------- embedder


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


def load_model(settings: Settings, version: str) -> tuple[ConvAutoencoder, dict[str, Any]]:
    """Rebuild the network of checkpoint ``version`` and load its weights."""
    import torch

    from service.autoencoder_model import ConvAutoencoder

    meta = read_checkpoint_meta(settings, version)
    config = AutoencoderConfig.from_dict(meta["config"])
    model = ConvAutoencoder(config)
    path = checkpoint_dir(settings, version) / MODEL_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError, ValueError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = " ".join(lines[:2])[:200] if lines else type(exc).__name__
        raise StoreError(
            f"autoencoder weights {path} cannot be loaded ({reason}); "
            "run `simimg-admin train` again"
        ) from None
    return model.eval(), meta


def load_autoencoder_version(settings: Settings, version: str) -> AutoencoderEmbedder:
    """The embedder of a given checkpoint (current or pending)."""
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
