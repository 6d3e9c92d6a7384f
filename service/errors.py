"""Errors that reach the user as one clear line (the CLI prints ``str(error)`` and exits 1)."""

from __future__ import annotations


class SimimgError(Exception):
    """Base class: a problem the user can act on, with a one-line message."""


class ConfigError(SimimgError):
    """A setting or argument is invalid."""


class ImageDecodeError(SimimgError):
    """A file or upload is not a usable image; the message says why."""


class ImageTooLargeError(ImageDecodeError):
    """A file or upload is over the byte or pixel limit (SIMIMG_MAX_FILE_BYTES / _PIXELS)."""


class WeightsNotFoundError(SimimgError):
    """Pretrained MobileNet weights are not available offline."""


class PointNotFoundError(ConfigError):
    """No stored image has the given point id."""


class StoreInUseError(SimimgError):
    """The embedded data directory is held by another process."""


class EmptyCollectionError(SimimgError):
    """The collection has no points to search."""


class ModelNotTrainedError(SimimgError):
    """The autoencoder space is used before any model was trained."""


class StoreError(SimimgError):
    """The vector store refused an operation or holds an incompatible schema."""
