"""Checkpoint files of the autoencoder, under ``settings.models_dir / "autoencoder"``::

    <version>/model.pt         state dict (torch.save; loaded with weights_only=True)
    <version>/checkpoint.json  config, metrics, number of images, training-set fingerprint
    <version>/loss_curve.png   train / validation loss per epoch
    CURRENT                    the version ingest and search use
    PENDING                    a trained version whose re-embed has not finished yet

Version directories and pointer files are published whole (:mod:`service.atomic`), so a
crash never leaves a half-written checkpoint or pointer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.atomic import write_text_atomic
from service.config import Settings
from service.errors import StoreError

CURRENT = "CURRENT"
PENDING = "PENDING"
MODEL_FILE = "model.pt"
META_FILE = "checkpoint.json"
LOSS_CURVE_FILE = "loss_curve.png"


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
