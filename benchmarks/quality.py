"""Retrieval quality of the mobilenet space on a real labelled set, beside a raw-pixel baseline.

Ingests a labelled folder (label = top-level folder name) through the real ingest path into
a throw-away embedded store, once per MobileNet input size, then scores leave-one-out
retrieval: precision@6 and mAP@10.

    python -m benchmarks.quality                       # openclipart, 40 per category
    python -m benchmarks.quality --dataset fashion-mnist --count 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from benchmarks.datasets import fashion_mnist_labelled, openclipart_labelled
from benchmarks.metrics import mean_average_precision_at_k, precision_at_k, raw_pixel_vectors
from ingest.runner import FolderIngester
from service.config import Settings
from service.images import decode_image
from service.pipeline import build_pipeline
from service.store import open_store
from service.store.schema import VECTOR_MOBILENET
from service.walker import iter_image_files

RAW_SIDE = 32


def labelled_folder(dataset: str, dest: Path, count: int, per_category: int) -> Path:
    if dataset == "openclipart":
        openclipart_labelled(dest, per_category=per_category)
    else:
        fashion_mnist_labelled(dest, count=count)
    return dest


def embed_folder(folder: Path, image_size: int, work: Path) -> tuple[np.ndarray, list[str], float]:
    """Ingest ``folder`` at ``image_size``; return vectors, labels and images/s."""
    settings = Settings.from_env({}, data_dir=work / f"data-{image_size}", image_size=image_size)
    pipeline = build_pipeline(settings, [VECTOR_MOBILENET])
    store = open_store(settings)
    try:
        files = list(iter_image_files(folder))
        report = FolderIngester(store, pipeline).ingest(folder, files)
        records = [r for page in store.scroll(with_vectors=[VECTOR_MOBILENET]) for r in page]
    finally:
        store.close()
    records.sort(key=lambda r: r.payload["path"])
    vectors = np.stack([r.vectors[VECTOR_MOBILENET] for r in records])
    labels = [r.payload["path"].split("/")[0] for r in records]
    return vectors, labels, report.images_per_second


def raw_pixels(folder: Path) -> tuple[np.ndarray, list[str], float]:
    files = sorted(iter_image_files(folder), key=lambda p: p.relative_to(folder).as_posix())
    started = time.perf_counter()
    images = []
    for path in files:
        decoded = decode_image(path.read_bytes(), max_pixels=50_000_000, source=str(path))
        images.append(np.asarray(decoded.image.resize((RAW_SIDE, RAW_SIDE), Image.BILINEAR)))
    rate = len(files) / (time.perf_counter() - started)
    labels = [p.relative_to(folder).parts[0] for p in files]
    return raw_pixel_vectors(images), labels, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=["openclipart", "fashion-mnist"], default="openclipart"
    )
    parser.add_argument("--per-category", type=int, default=40)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="simimg-quality-") as tmp:
        work = Path(tmp)
        folder = labelled_folder(args.dataset, work / "images", args.count, args.per_category)
        rows = []
        vectors, labels, rate = raw_pixels(folder)
        rows.append((f"raw pixels {RAW_SIDE}x{RAW_SIDE}", vectors, labels, rate))
        for size in args.sizes:
            vectors, labels, rate = embed_folder(folder, size, work)
            rows.append((f"mobilenet {size}px", vectors, labels, rate))

    n_classes = len(set(rows[0][2]))
    table = Table(
        title=f"{args.dataset}: {len(rows[0][2])} images, {n_classes} labels (leave-one-out)"
    )
    for column in ("space", "precision@6", "mAP@10", "images/s"):
        table.add_column(column, justify="right" if column != "space" else "left")
    for name, vectors, labels, rate in rows:
        label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
        table.add_row(
            name,
            f"{precision_at_k(vectors, label_ids, 6):.3f}",
            f"{mean_average_precision_at_k(vectors, label_ids, 10):.3f}",
            f"{rate:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
