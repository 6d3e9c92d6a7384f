"""Writing versioned checkpoints, the loss-curve PNG, and finding a resumable one.

The layout is defined (and read) by :mod:`service.autoencoder.files`; this module only writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from service.atomic import atomic_write, is_temp_name, publish_dir, remove_stale_temps_in
from service.autoencoder.files import (
    CURRENT,
    LOSS_CURVE_FILE,
    META_FILE,
    MODEL_FILE,
    PENDING,
    autoencoder_dir,
    checkpoint_dir,
    read_checkpoint_meta,
    read_pointer,
)
from service.config import Settings
from service.errors import SimimgError
from training.progress import EpochStats


def write_checkpoint(
    settings: Settings, model: torch.nn.Module, meta: dict[str, Any], history: list[EpochStats]
) -> str:
    """Save weights, metadata and the loss curve as a new version; return its id.

    Written into a hidden temporary directory, fsynced, then renamed into place
    (:func:`service.atomic.publish_dir`).
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    weights = buffer.getvalue()
    now = datetime.now(UTC)
    version = f"ae-{now:%Y%m%d-%H%M%S}-{hashlib.sha256(weights).hexdigest()[:8]}"
    full_meta = {"version": version, "created_at": now.isoformat(timespec="seconds"), **meta}
    with publish_dir(checkpoint_dir(settings, version)) as folder:
        (folder / MODEL_FILE).write_bytes(weights)
        (folder / META_FILE).write_text(json.dumps(full_meta, indent=2))
        plot_loss_curve(history, folder / LOSS_CURVE_FILE, title=version)
    return version


def plot_loss_curve(history: list[EpochStats], path: Path, title: str = "") -> Path:
    """Train and validation loss per epoch as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        epochs = [s.epoch for s in history]
        ax.plot(epochs, [s.train_loss for s in history], marker="o", label="train")
        ax.plot(epochs, [s.val_loss for s in history], marker="o", label="validation")
        best = min(history, key=lambda s: s.val_loss, default=None)
        if best is not None:
            ax.axvline(best.epoch, color="grey", linestyle=":", label=f"best (epoch {best.epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("reconstruction MSE")
        ax.set_yscale("log")
        ax.set_title(f"autoencoder loss {title}".strip())
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        with atomic_write(path, "wb") as handle:  # also rewritten inside a published checkpoint
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
    return path


def history_from_meta(meta: dict[str, Any]) -> list[EpochStats]:
    return [EpochStats(**row) for row in meta.get("metrics", {}).get("history", [])]


def resumable_version(settings: Settings, fingerprint: str, request: dict[str, Any]) -> str | None:
    """The pending checkpoint, if it was trained on the same images with the same request."""
    version = read_pointer(settings, PENDING)
    if version is None or version == read_pointer(settings, CURRENT):
        return None
    try:
        meta = read_checkpoint_meta(settings, version)
    except SimimgError:
        return None
    same = meta.get("fingerprint") == fingerprint and meta.get("request") == request
    return version if same else None


def prune_checkpoints(settings: Settings, keep: set[str]) -> list[str]:
    """Delete version directories not in ``keep``, and temporary ones of killed runs."""
    root = autoencoder_dir(settings)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    remove_stale_temps_in(root)  # a concurrent run's checkpoint in the making stays
    for entry in root.iterdir():
        if entry.is_dir() and entry.name not in keep and not is_temp_name(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed
