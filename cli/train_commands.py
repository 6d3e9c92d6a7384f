"""``train`` and ``reconstruct``: the autoencoder space from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image, ImageDraw

from cli.common import err, out, require_file, settings_from, user_errors
from cli.remote import run_job, service_client

_GAP = 8
_CAPTION = 14


def train(
    ctx: typer.Context,
    epochs: Annotated[
        int, typer.Option(help="Most epochs to train (early stopping may end sooner)")
    ] = 25,
    image_size: Annotated[
        int, typer.Option(help="Side in pixels the autoencoder sees (multiple of 16, 32-256)")
    ] = 64,
    latent_dim: Annotated[
        int | None,
        typer.Option(help="Latent vector size; must match the collection (env SIMIMG_LATENT_DIM)"),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Training batch size")] = 32,
    folder: Annotated[
        Path | None,
        typer.Option(help="Train on the images in this folder instead of the collection's"),
    ] = None,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better validation loss")
    ] = 4,
    seed: Annotated[int, typer.Option(help="Random seed (same images + seed = same model)")] = 0,
) -> None:
    """Train the autoencoder on your images, then re-embed every image's autoencoder vector.

    The new model replaces the old one only once every image has its new vector. If the run
    is interrupted, running the same command again resumes without retraining.
    """
    from service.autoencoder.config import AutoencoderConfig
    from service.collection import open_collection
    from training.driver import train_and_activate
    from training.loop import TrainConfig
    from training.progress import RichTrainingDisplay

    with user_errors():
        settings = settings_from(ctx, latent_dim=latent_dim)
        model_config = AutoencoderConfig(image_size=image_size, latent_dim=settings.latent_dim)
        train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, patience=patience, seed=seed
        )
        if (client := service_client(settings)) is not None:
            body = {"kind": "train", "epochs": epochs, "image_size": image_size,
                    "batch_size": batch_size, "patience": patience, "seed": seed,
                    "folder": str(folder.resolve()) if folder is not None else None}
            _print_summary(run_job(client, body, unit="items/s"))
            return
        store = open_collection(settings, finish_autoencoder=False)  # train resumes it
        display = RichTrainingDisplay(err)
        try:
            outcome = train_and_activate(
                settings, store, model_config, train_config, folder, display
            )
        finally:
            display.close()
            store.close()
    _print_summary(outcome.to_json())


def _print_summary(summary: dict[str, Any]) -> None:
    """The end of ``train``: the model, its losses, the re-embed (direct or by the service)."""
    metrics = summary["metrics"]
    how = "resumed pending model" if summary["resumed"] else "trained"
    err.print(
        f"{how} {summary['version']} on {summary['images']} images "
        f"({len(summary['skipped'])} skipped): "
        f"validation loss {metrics['initial_val_loss']:.5f} -> {metrics['best_val_loss']:.5f} "
        f"(best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
        f"{metrics['train_seconds']:.0f}s)",
        highlight=False,
        soft_wrap=True,
    )
    report = summary["reembed"]
    err.print(
        f"re-embedded {report['embedded']} images in {report['seconds']:.1f}s"
        + (f", {len(report['failed'])} unreadable (left out of autoencoder search)"
           if report["failed"] else ""),
        highlight=False,
        soft_wrap=True,
    )
    for path, reason in report["failed"]:
        err.print(
            f"  not re-embedded {path}: {reason}", highlight=False, markup=False, soft_wrap=True
        )
    out.print(f"checkpoint: {summary['checkpoint']}", highlight=False, soft_wrap=True)


def reconstruct(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="Image file to reconstruct")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write")],
    size: Annotated[int, typer.Option(help="Display height of each half, in pixels")] = 256,
) -> None:
    """Save IMAGE beside the current autoencoder's reconstruction of it.

    Also makes sure the training loss curve is saved as a PNG beside the checkpoint.
    """
    from service.atomic import atomic_write
    from service.autoencoder.files import LOSS_CURVE_FILE, checkpoint_dir
    from service.embedders.autoencoder import require_autoencoder_embedder
    from service.pipeline import decode_file
    from training.checkpoint import history_from_meta, plot_loss_curve

    require_file(image, "image")
    with user_errors():
        settings = settings_from(ctx)
        embedder = require_autoencoder_embedder(settings)
        original = decode_file(image, settings, min_side=size)[1].image
        figure = side_by_side(original, embedder.reconstruct(original), size)
        with atomic_write(output, "wb") as handle:
            figure.save(handle, format="PNG")
        curve = checkpoint_dir(settings, embedder.model_id) / LOSS_CURVE_FILE
        if not curve.is_file():
            plot_loss_curve(history_from_meta(embedder.meta), curve, title=embedder.model_id)
    out.print(f"reconstruction: {output}", highlight=False, soft_wrap=True)
    out.print(f"loss curve: {curve}", highlight=False, soft_wrap=True)


def side_by_side(original: Image.Image, reconstruction: Image.Image, height: int) -> Image.Image:
    """Original (aspect kept) and the reconstruction stretched back to that aspect, captioned."""
    width = max(1, round(original.width * height / original.height))
    left = original.resize((width, height), Image.Resampling.LANCZOS)
    right = reconstruction.resize((width, height), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (2 * width + _GAP, height + _CAPTION), "white")
    canvas.paste(left, (0, _CAPTION))
    canvas.paste(right, (width + _GAP, _CAPTION))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 1), "original", fill="black")
    draw.text((width + _GAP + 2, 1), f"reconstruction ({reconstruction.width}px)", fill="black")
    return canvas


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``reconstruct`` to the admin CLI."""
    app.command()(train)
    app.command()(reconstruct)
