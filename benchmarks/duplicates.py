"""Near-duplicate benchmark: real photos, their edited copies, and distinct look-alikes.

Labelled set (every pixel real, nothing downloaded):

* **families**: each of the 20 foolbox ImageNet photos and 7 everyday photos of
  scikit-image / scikit-learn, plus one copy per edit: ``resize`` (half size), ``crop``
  (85% of each side, off-centre), ``jpeg`` (re-encoded at quality 15), ``brightness``
  (brightness x1.3, contrast x0.75), ``flip`` (mirror), ``rotate`` (6 degrees, borders
  cropped away), ``text`` (a caption burnt in), ``greyscale``. Any two files of one family
  are a true duplicate pair;
* **distinct images of the same kind**, none a duplicate of anything: the 40 CIFAR-10/100
  photos in foolbox, Fashion-MNIST product photos (many near-identical-looking items of one
  class), openclipart drawings of a few categories, and among the ImageNet photos two
  different jeeps (class 609).

Everything goes through the real path: files ingested by the library sync into a
throw-away embedded store, then the real ``find_duplicates`` scan (batched Qdrant queries,
complete-linkage groups) at each threshold. A predicted pair is two files in one group.
Prints pair precision / recall per threshold and space, recall per edit type, and the
highest-recall threshold with precision >= 0.98 (and >= 0.999, the precision of
imagededup's published CNN result, recall 0.384).

    python -m benchmarks.duplicates                      # mobilenet + a small autoencoder
    python -m benchmarks.duplicates --autoencoder-epochs 0
    python -m benchmarks.duplicates --scale 100000       # time / memory of one scan
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps
from rich.console import Console
from rich.table import Table

from benchmarks.datasets import (
    _photo_array,
    fashion_mnist_labelled,
    foolbox_dir,
    openclipart_labelled,
)
from service.config import Settings

EVERYDAY = ("skimage/astronaut", "skimage/chelsea", "skimage/coffee", "skimage/rocket",
            "skimage/motorcycle_left", "sklearn/china", "sklearn/flower")


def _resize(im: Image.Image) -> Image.Image:
    return im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)


def _crop(im: Image.Image) -> Image.Image:
    w, h = round(im.width * 0.85), round(im.height * 0.85)
    return im.crop((im.width - w, 0, im.width, h))


def _brightness(im: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.3)).enhance(0.75)


def _rotate(im: Image.Image) -> Image.Image:
    turned = im.rotate(6, resample=Image.Resampling.BICUBIC)
    margin_x, margin_y = round(im.width * 0.06), round(im.height * 0.06)
    return turned.crop((margin_x, margin_y, im.width - margin_x, im.height - margin_y))


def _text(im: Image.Image) -> Image.Image:
    out = im.copy()
    draw = ImageDraw.Draw(out)
    size = max(12, im.height // 12)
    font = ImageFont.load_default(size=size)
    draw.text((im.width // 20, im.height - 2 * size), "Summer 2024 - do not copy", font=font,
              fill=(255, 255, 255), stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    return out


def _greyscale(im: Image.Image) -> Image.Image:
    return im.convert("L").convert("RGB")


#: edit name -> (transform, JPEG quality of the saved copy)
EDITS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    "resize": (_resize, 90),
    "crop": (_crop, 90),
    "jpeg": (lambda im: im, 15),
    "brightness": (_brightness, 90),
    "flip": (ImageOps.mirror, 90),
    "rotate": (_rotate, 90),
    "text": (_text, 90),
    "greyscale": (_greyscale, 90),
}


def photo_sources() -> dict[str, Image.Image]:
    """The family originals: name -> RGB photo."""
    photos = {p.stem: Image.open(p).convert("RGB")
              for p in sorted(foolbox_dir().glob("imagenet_*.jpg"))}
    for key in EVERYDAY:
        arr = np.ascontiguousarray(_photo_array(key)[..., :3])
        photos[key.split("/")[1]] = Image.fromarray(arr).convert("RGB")
    return photos


def write_family(dest: Path, name: str, photo: Image.Image, edits: list[str]) -> list[Path]:
    """``dest/<name>/original.jpg`` and one ``<edit>.jpg`` per edit."""
    folder = dest / name
    folder.mkdir(parents=True, exist_ok=True)
    photo.save(folder / "original.jpg", quality=95)
    written = [folder / "original.jpg"]
    for edit in edits:
        transform, quality = EDITS[edit]
        transform(photo).save(folder / f"{edit}.jpg", quality=quality)
        written.append(folder / f"{edit}.jpg")
    return written


def write_benchmark_set(dest: Path, fashion: int = 200, clipart_per_category: int = 12,
                        clipart_categories: int = 8) -> None:
    """Families under ``dest/families/<photo>/``, distinct images under ``dest/distinct/``."""
    for name, photo in photo_sources().items():
        write_family(dest / "families", name, photo, list(EDITS))
    distinct = dest / "distinct"
    cifar = distinct / "cifar"
    cifar.mkdir(parents=True, exist_ok=True)
    for path in sorted(foolbox_dir().glob("cifar*.png")):
        Image.open(path).convert("RGB").save(cifar / path.name)
    if fashion:
        fashion_mnist_labelled(distinct / "fashion", count=fashion, upscale=112)
    if clipart_per_category:
        # without openclipart-png installed: fewer distinct images
        with contextlib.suppress(FileNotFoundError):
            openclipart_labelled(distinct / "clipart", per_category=clipart_per_category,
                                 categories=clipart_categories)


def family_of(path: str) -> str | None:
    """The family a file (path relative to the set's root) belongs to; None if distinct."""
    parts = path.split("/")
    return parts[1] if parts[0] == "families" else None


def edit_of(path: str) -> str:
    return Path(path).stem


def is_photo(path: str) -> bool:
    """Family members and the CIFAR photos (not the product shots and clip-art)."""
    parts = path.split("/")
    return parts[0] == "families" or parts[1] == "cifar"


# --------------------------------------------------------------------------- scoring


def predicted_pairs(groups: list) -> set[tuple[str, str]]:
    pairs = set()
    for group in groups:
        paths = sorted({item.path for item in group.items})
        pairs.update(itertools.combinations(paths, 2))
    return pairs


def true_pairs(paths: list[str]) -> set[tuple[str, str]]:
    by_family: dict[str, list[str]] = {}
    for path in paths:
        family = family_of(path)
        if family is not None:
            by_family.setdefault(family, []).append(path)
    return {pair for members in by_family.values()
            for pair in itertools.combinations(sorted(members), 2)}


def score(groups: list, paths: list[str]) -> dict[str, float]:
    """Pair precision / recall over all pairs, and recall per edit (original, edit) pair."""
    predicted, truth = predicted_pairs(groups), true_pairs(paths)
    hits = predicted & truth
    photos = {p for p in predicted if is_photo(p[0]) and is_photo(p[1])}
    result = {
        "precision": len(hits) / len(predicted) if predicted else 1.0,
        "photo_precision": len(photos & truth) / len(photos) if photos else 1.0,
        "recall": len(hits) / len(truth) if truth else 0.0,
        "predicted": float(len(predicted)),
        "false": float(len(predicted - truth)),
        "false_photo": float(len(photos - truth)),
    }
    for edit in EDITS:
        wanted = {p for p in truth if {edit_of(p[0]), edit_of(p[1])} == {"original", edit}}
        result[edit] = len(wanted & predicted) / len(wanted) if wanted else 0.0
    return result


def best_threshold(rows: dict[float, dict[str, float]], precision: float,
                   key: str = "precision") -> float | None:
    """The threshold of highest recall whose ``key`` precision is at least ``precision``."""
    ok = [(r["recall"], t) for t, r in rows.items() if r[key] >= precision]
    return max(ok)[1] if ok else None


# --------------------------------------------------------------------------- runs


def data_dir(path: Path, models_from: Path | None) -> Path:
    """A fresh data dir; with ``models_from``, its MobileNet export linked in."""
    if models_from is not None:
        (path / "models").mkdir(parents=True, exist_ok=True)
        (path / "models" / "mobilenet").symlink_to(
            (models_from / "models" / "mobilenet").resolve(), target_is_directory=True)
    return path


def ingest(settings: Settings, root: Path) -> list[str]:
    from ingest.runner import FolderIngester
    from ingest.sync import sync_roots
    from service.pipeline import build_pipeline
    from service.store import open_store

    store = open_store(settings)
    try:
        report = sync_roots(FolderIngester(store, build_pipeline(settings, ["mobilenet"])),
                            [root])
        paths = [loc["path"] for page in store.scroll(with_payload=["locations"])
                 for record in page for loc in record.payload["locations"]]
    finally:
        store.close()
    Console(stderr=True).print(f"ingested: {report.summary()}", highlight=False)
    return paths


def train_autoencoder(settings: Settings, epochs: int) -> None:
    from service.autoencoder.config import AutoencoderConfig
    from service.store import open_store
    from training.driver import train_and_activate
    from training.loop import TrainConfig

    store = open_store(settings)
    try:
        train_and_activate(settings, store, AutoencoderConfig(image_size=64,
                                                              latent_dim=settings.latent_dim),
                           TrainConfig(epochs=epochs))
    finally:
        store.close()


def sweep(settings: Settings, space: str, thresholds: list[float],
          paths: list[str]) -> dict[float, dict[str, float]]:
    from service.collection import open_collection
    from service.duplicates import find_duplicates
    from service.pipeline import build_pipeline

    store = open_collection(settings)
    try:
        model_id = build_pipeline(settings, [space]).model_id(space)
        return {t: score(find_duplicates(settings, store, space=space, threshold=t,
                                         model_id=model_id, write_labels=False).groups, paths)
                for t in thresholds}
    finally:
        store.close()


def print_sweep(space: str, rows: dict[float, dict[str, float]], n_files: int,
                n_true: int) -> None:
    table = Table(title=f"{space}: {n_files} files, {n_true} true duplicate pairs",
                  title_justify="left")
    for column in ("thr", "P photos", "P all", "recall", "pairs", "false photo", "false all",
                   *EDITS):
        table.add_column(column, justify="right")
    for t, r in rows.items():
        table.add_row(f"{t:.2f}", f"{r['photo_precision']:.3f}", f"{r['precision']:.3f}",
                      f"{r['recall']:.3f}", str(int(r["predicted"])), str(int(r["false_photo"])),
                      str(int(r["false"])), *(f"{r[e]:.2f}" for e in EDITS))
    out = Console(width=200)
    out.print(table)
    for key, what in (("photo_precision", "photos"), ("precision", "all images")):
        for target in (0.98, 0.999):
            best = best_threshold(rows, target, key)
            if best is None:
                out.print(f"{space}: no threshold reaches precision {target} on {what}")
                continue
            r = rows[best]
            out.print(f"{space}: precision on {what} >= {target}: threshold {best:.2f}, "
                      f"precision {r[key]:.3f}, recall {r['recall']:.3f}", highlight=False)


def quality(args: argparse.Namespace) -> None:

    with tempfile.TemporaryDirectory(prefix="simimg-dups-") as tmp:
        work = Path(tmp)
        write_benchmark_set(work / "set", fashion=args.fashion,
                            clipart_per_category=args.clipart_per_category)
        settings = Settings.from_env({}, data_dir=data_dir(work / "data", args.models_from),
                                     latent_dim=args.latent_dim)
        paths = ingest(settings, work / "set")
        n_true = len(true_pairs(paths))
        rows = sweep(settings, "mobilenet", args.thresholds, paths)
        print_sweep("mobilenet", rows, len(paths), n_true)
        if args.autoencoder_epochs:
            started = time.perf_counter()
            train_autoencoder(settings, args.autoencoder_epochs)
            Console(stderr=True).print(f"autoencoder trained in "
                                       f"{time.perf_counter() - started:.0f}s")
            rows = sweep(settings, "autoencoder", args.ae_thresholds, paths)
            print_sweep("autoencoder", rows, len(paths), n_true)


# --------------------------------------------------------------------------- scale


class PeakRss:
    """Samples this process's resident memory every 50 ms (ru_maxrss never goes down).

    ``peak`` counts every resident page, including the memory-mapped collection files the
    engine reads through (page cache the kernel drops under memory pressure);
    ``peak_anon`` only the process's own (anonymous) memory, which it cannot."""

    def __init__(self) -> None:
        self.peak = 0
        self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.peak = max(self.peak, _rss())
        self.peak_anon = max(self.peak_anon, _anon_rss())

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> PeakRss:
        self._sample()
        self._thread.start()
        return self

    def describe(self) -> str:
        return f"peak RSS {self.peak / 2**20:,.0f} MiB, anonymous {self.peak_anon / 2**20:,.0f} MiB"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _anon_rss() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def derived_vectors(real: np.ndarray, n: int, dup_fraction: float,
                    rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors derived from real embeddings: a random mix of two real vectors
    plus noise for most points, and for ``dup_fraction`` of them a slightly perturbed copy
    of an earlier derived vector (a near-duplicate)."""
    a = real[rng.integers(0, len(real), n)]
    b = real[rng.integers(0, len(real), n)]
    w = rng.uniform(0.2, 0.8, (n, 1)).astype(np.float32)
    noise = rng.normal(0, 0.6 / np.sqrt(real.shape[1]), (n, real.shape[1])).astype(np.float32)
    vectors = w * a + (1 - w) * b + noise * np.linalg.norm(a, axis=1, keepdims=True)
    dups = rng.random(n) < dup_fraction
    dups[0] = False
    sources = (rng.random(n) * np.arange(n)).astype(np.int64)
    small = rng.normal(0, 0.15 / np.sqrt(real.shape[1]), (n, real.shape[1])).astype(np.float32)
    vectors[dups] = vectors[sources[dups]] + small[dups]
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _derived_store(args: argparse.Namespace, work: Path) -> tuple[Settings, Any]:
    """A fresh embedded store of ``args.scale`` derived vectors made from the real set."""
    from service.store import open_store
    from service.store.base import PointRecord

    console = Console(stderr=True)
    write_benchmark_set(work / "set", fashion=args.fashion,
                        clipart_per_category=args.clipart_per_category)
    settings = Settings.from_env({}, data_dir=data_dir(work / "data", args.models_from))
    ingest(settings, work / "set")
    store = open_store(settings)
    real = np.stack([r.vectors["mobilenet"] for page in store.scroll(
        1024, with_vectors=["mobilenet"]) for r in page])
    store.close()
    big = Settings.from_env({}, data_dir=data_dir(work / "big", args.models_from))
    store = open_store(big)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, args.scale, 10_000):
        n = min(10_000, args.scale - start)
        vectors = derived_vectors(real, n, args.dup_fraction, rng)
        store.upsert([PointRecord(
            f"00000000-0000-4000-8000-{start + i:012d}", {"mobilenet": vectors[i]},
            {"locations": [{"root": "/derived", "path": f"{start + i}.jpg"}],
             "width": 640, "height": 480, "file_size": 100_000})
            for i in range(n)])
    store.flush()
    console.print(f"upserted {args.scale} derived points in "
                  f"{time.perf_counter() - started:.0f}s")
    return big, store


def _reused_store(args: argparse.Namespace) -> tuple[Settings, Any]:
    """A collection kept by ``python -m benchmarks.scale --keep`` or an earlier ``--scale``
    run (its settings repeated: ``--latent-dim``, ``--quantization``, ``--on-disk``)."""
    from service.store import open_store

    settings = Settings.from_env({}, data_dir=args.reuse, latent_dim=args.latent_dim,
                                 quantization=args.quantization, vectors_on_disk=args.on_disk)
    return settings, open_store(settings)


def scale(args: argparse.Namespace) -> None:
    """Time and memory of ``find_duplicates`` over a large collection."""
    from service.duplicates import find_duplicates
    from service.duplicates.scan import INDEX_FROM

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="simimg-dups-scale-") as tmp:
        if args.reuse:
            settings, store = _reused_store(args)
        else:
            settings, store = _derived_store(args, Path(tmp))
        points = store.count()
        before = _rss()
        build_seconds, build_rss = 0.0, "no build"
        if points >= INDEX_FROM and store.indexed_vectors() < points:
            with PeakRss() as peak:  # what the scan does first, timed on its own here
                started = time.perf_counter()
                store.optimize()
                build_seconds = time.perf_counter() - started
            build_rss = peak.describe()
        console.print(f"{points} points; index build {build_seconds:.0f}s ({build_rss}); "
                      f"RSS before the scans {before / 2**20:,.0f} MiB", highlight=False)
        with PeakRss() as rss:
            started = time.perf_counter()
            scan = find_duplicates(settings, store, threshold=args.threshold)
            seconds = time.perf_counter() - started
        Console().print(
            f"{points} points: {len(scan.groups)} groups, {scan.points} grouped points; "
            f"neighbour scan and grouping {seconds:.0f}s, {rss.describe()}; load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", highlight=False)
        if args.compare_exact and points < INDEX_FROM:
            store.optimize()
            indexed = find_duplicates(settings, store, threshold=args.threshold)
            exact_keys, indexed_keys = ({g.key for g in x.groups} for x in (scan, indexed))
            console.print(f"HNSW vs exact scan: {len(indexed_keys)} / {len(exact_keys)} groups, "
                          f"{len(exact_keys & indexed_keys)} identical; grouped points "
                          f"{indexed.points} / {scan.points}")
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.60, 0.65, 0.70, 0.75, 0.78, 0.80, 0.82, 0.85, 0.88, 0.90,
                                 0.92, 0.95, 0.97])
    parser.add_argument("--ae-thresholds", type=float, nargs="+",
                        default=[0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.98, 0.99])
    parser.add_argument("--autoencoder-epochs", type=int, default=20)
    parser.add_argument("--latent-dim", type=int, default=256)
    parser.add_argument("--fashion", type=int, default=200, help="Fashion-MNIST look-alikes")
    parser.add_argument("--clipart-per-category", type=int, default=12)
    parser.add_argument("--models-from", type=Path, default=None,
                        help="a data dir whose verified MobileNet export to link (saves the "
                        "export on repeated runs)")
    parser.add_argument("--scale", type=int, default=0,
                        help="time/memory of one scan over this many derived points")
    parser.add_argument("--dup-fraction", type=float, default=0.05)
    parser.add_argument("--threshold", type=float, default=None, help="--scale: threshold")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="--scale: scan a data dir kept by benchmarks.scale --keep instead")
    parser.add_argument("--quantization", default="none", choices=["none", "int8"],
                        help="--reuse: the kept collection's quantization")
    parser.add_argument("--on-disk", action="store_true",
                        help="--reuse: the kept collection has its vectors on disk")
    parser.add_argument("--compare-exact", action="store_true",
                        help="--scale below 10,000: also scan with HNSW, compare the groups")
    args = parser.parse_args(argv)
    if args.scale or args.reuse:
        scale(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
