"""Retrieval quality of the autoencoder space beside mobilenet and raw pixels, plus training time.

Ingests a real labelled folder (label = top-level folder) through the real ingest path into
a throw-away embedded store, runs the real ``train`` driver on that collection (train,
checkpoint, re-embed every point), then scores leave-one-out retrieval on the stored
vectors: precision@6 and mAP@10.

    python -m benchmarks.autoencoder_quality                          # openclipart
    python -m benchmarks.autoencoder_quality --dataset fashion-mnist --count 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.metrics import mean_average_precision_at_k, precision_at_k, raw_pixel_vectors
from benchmarks.quality import embed_folder, labelled_folder, raw_pixels
from service.autoencoder.config import AutoencoderConfig
from service.autoencoder.preprocess import resize_square
from service.config import Settings
from service.images import decode_image
from service.store import open_store
from service.store.schema import PAYLOAD_PATH, VECTOR_AUTOENCODER
from training.data import files_in_folder
from training.driver import train_and_activate
from training.loop import TrainConfig
from training.progress import RichTrainingDisplay


def autoencoder_vectors(
    settings: Settings, model: AutoencoderConfig, train: TrainConfig, console: Console
) -> tuple[np.ndarray, list[str], dict[str, float]]:
    """Train on the collection in ``settings``; return stored vectors, labels and timings."""
    store = open_store(settings)
    display = RichTrainingDisplay(console)
    try:
        started = time.perf_counter()
        outcome = train_and_activate(settings, store, model, train, observer=display)
        total = time.perf_counter() - started
        records = [
            r for page in store.scroll(with_vectors=[VECTOR_AUTOENCODER]) for r in page
        ]
    finally:
        display.close()
        store.close()
    records.sort(key=lambda r: r.payload[PAYLOAD_PATH])
    metrics = outcome.meta["metrics"]
    timings = {
        "train_seconds": metrics["train_seconds"],
        "total_seconds": total,
        "reembed_seconds": outcome.reembed.seconds,
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "initial_val_loss": metrics["initial_val_loss"],
        "best_val_loss": metrics["best_val_loss"],
        "images": outcome.images,
    }
    vectors = np.stack([r.vectors[VECTOR_AUTOENCODER] for r in records])
    labels = [r.payload[PAYLOAD_PATH].split("/")[0] for r in records]
    return vectors, labels, timings


def input_pixels(folder: Path, size: int, settings: Settings) -> tuple[np.ndarray, list[str]]:
    """The autoencoder's own input (whole image squashed to size x size), as a baseline."""
    files = sorted(files_in_folder(folder), key=lambda p: p.relative_to(folder).as_posix())
    vectors = []
    for path in files:
        decoded = decode_image(path.read_bytes(), max_pixels=settings.max_pixels, source=str(path))
        vectors.append(resize_square(decoded.image, size))
    labels = [p.relative_to(folder).parts[0] for p in files]
    return raw_pixel_vectors(vectors), labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=["openclipart", "fashion-mnist"], default="openclipart"
    )
    parser.add_argument("--per-category", type=int, default=60, help="openclipart")
    parser.add_argument("--count", type=int, default=2000, help="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=256)
    parser.add_argument("--no-mobilenet", action="store_true", help="skip the mobilenet row")
    parser.add_argument("--distill", type=float, default=TrainConfig.distill,
                        help="weight of the teacher (stored mobilenet vector) term")
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads,
                        help="torch threads for training")
    args = parser.parse_args(argv)
    console = Console(stderr=True)

    with tempfile.TemporaryDirectory(prefix="simimg-ae-quality-") as tmp:
        work = Path(tmp)
        folder = labelled_folder(args.dataset, work / "images", args.count, args.per_category)
        rows: list[tuple[str, np.ndarray, list[str]]] = []
        raw, raw_labels, _ = raw_pixels(folder)
        rows.append(("raw pixels 32x32, centred", raw, raw_labels))
        settings = Settings.from_env(
            {}, data_dir=work / "data-224", image_size=224, latent_dim=args.latent_dim
        )
        same, same_labels = input_pixels(folder, args.image_size, settings)
        rows.append((f"raw pixels {args.image_size}x{args.image_size} (AE input), centred",
                     same, same_labels))
        # Ingest (mobilenet vectors) into the store that the autoencoder then trains on.
        mobilenet, mobilenet_labels, _ = embed_folder(folder, 224, work)
        if not args.no_mobilenet:
            rows.append(("mobilenet 224px", mobilenet, mobilenet_labels))
        model = AutoencoderConfig(image_size=args.image_size, latent_dim=args.latent_dim)
        ae, ae_labels, timings = autoencoder_vectors(
            settings, model,
            TrainConfig(epochs=args.epochs, distill=args.distill, patience=args.patience,
                        threads=args.threads),
            console,
        )
        teacher = f", teacher {args.distill:g}" if args.distill else ""
        rows.append((f"autoencoder {args.image_size}px, {args.latent_dim}-d{teacher}",
                     ae, ae_labels))

    n_classes = len(set(rows[0][2]))
    table = Table(
        title=f"{args.dataset}: {len(rows[0][2])} images, {n_classes} labels (leave-one-out)"
    )
    for column in ("space", "precision@6", "mAP@10"):
        table.add_column(column, justify="right" if column != "space" else "left")
    for name, vectors, labels in rows:
        label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
        table.add_row(
            name,
            f"{precision_at_k(vectors, label_ids, 6):.3f}",
            f"{mean_average_precision_at_k(vectors, label_ids, 10):.3f}",
        )
    out = Console()
    out.print(table)
    out.print(
        f"autoencoder: {timings['images']} images, {timings['epochs_run']} epochs run "
        f"(best {timings['best_epoch']}, max {args.epochs}), "
        f"val loss {timings['initial_val_loss']:.5f} -> {timings['best_val_loss']:.5f}; "
        f"training {timings['train_seconds']:.0f}s, re-embed {timings['reembed_seconds']:.0f}s, "
        f"train command total {timings['total_seconds']:.0f}s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
