"""Materialise real, labelled image folders on disk for tests, benchmarks and the demo.

Every source here is real image data that ships with an installed package; nothing is
downloaded and nothing is synthetic:

* ``foolbox==3.3.4`` (PyPI, installed ``--no-deps``): ``foolbox/data/`` holds 20 ImageNet
  JPEGs named ``imagenet_<nn>_<label>.jpg``. foolbox itself is never imported.
* scikit-image / scikit-learn: a handful of bundled colour photos (queries from outside
  the collection).
* Debian ``openclipart-png``: ``/usr/share/openclipart/png/<category>/...``, about 6,900
  clip-art PNGs; the label is the top-level category folder.
* Debian ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist/*-ubyte.gz`` (IDX),
  60,000 train + 10,000 test 28x28 grey product images in 10 classes.
* npm ``@tabler/icons`` (the one source fetched over the network, by ``npm pack``, once into
  a cache dir): the same icons drawn outlined and filled, rendered to PNG with cairosvg
  (``pip install cairosvg``; needs libcairo2). The cross-style retrieval set.

Every writer is deterministic for a given seed and idempotent: it records what it wrote in
``dest/.simimg-dataset.json`` (written last) and returns that record when called again
with the same parameters and every file still present. Called with different parameters,
it first deletes the files its previous run listed (and only those).

CLI: ``python -m benchmarks.datasets {foolbox,skimage,openclipart,fashion-mnist,camera-roll,
icon-styles} DEST [--count N] [--per-category N] ...``
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageEnhance

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
MARKER = ".simimg-dataset.json"

#: Fashion-MNIST class names, in label order, made safe for folder names.
FASHION_CLASSES: tuple[str, ...] = (
    "tshirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: Colour photos bundled inside the scikit-image wheel (no download): output name -> loader.
#: ``hubble``, ``ihc`` and ``retina`` are real but scientific images, not everyday photos.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
#: Real photos bundled inside the scikit-learn wheel.
SKLEARN_PHOTOS: tuple[str, ...] = ("china", "flower")

#: openclipart categories left out by default: "unsorted" is a grab bag and "special" holds
#: templates, gradients and patterns, so neither folder name is a meaningful label.
OPENCLIPART_EXCLUDE: tuple[str, ...] = ("unsorted", "special")

#: Bump a kind's number when its output changes, so old exports on disk are rebuilt.
_FORMAT_VERSION = {
    "foolbox": 1,
    "skimage": 1,
    "openclipart": 2,
    "fashion-mnist": 1,
    "camera-roll": 2,
    "icon-styles": 1,
}

_BIG_JOB = 2000  # below this many files, work in-process rather than start a pool


# --------------------------------------------------------------------------- helpers


def _params_key(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, sort_keys=True))


def _cached(dest: Path, kind: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Return the marker record if ``dest`` already holds this exact export, else clean up."""
    marker = dest / MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        marker.unlink(missing_ok=True)
        return None
    same = (
        record.get("kind") == kind
        and record.get("version") == _FORMAT_VERSION[kind]
        and record.get("params") == _params_key(params)
    )
    if same and all((dest / rel).is_file() for rel in record.get("files", [])):
        return record
    # Different request (or damaged export): remove exactly what the old run wrote.
    for rel in record.get("files", []):
        (dest / rel).unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    return None


def _finish(dest: Path, kind: str, params: dict[str, Any], files: list[str], **extra: Any) -> None:
    record = {
        "kind": kind,
        "version": _FORMAT_VERSION[kind],
        "params": _params_key(params),
        "files": files,
        **extra,
    }
    tmp = dest / (MARKER + ".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(dest / MARKER)


def _grouped(dest: Path, files: Iterable[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for rel in files:
        label, _, _ = rel.partition("/")
        out.setdefault(label, []).append(dest / rel)
    return out


def _run(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, items: int) -> list[Any]:
    """Map ``fn`` over ``jobs``, in a process pool only when the job is large."""
    workers = max(1, min(workers, os.cpu_count() or 1, len(jobs)))
    if workers == 1 or items < _BIG_JOB:
        return [fn(job) for job in jobs]
    # spawn, not fork: callers (tests, the service) may already hold torch/onnx threads.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(fn, jobs))


def _on_white(im: Image.Image) -> Image.Image:
    """Flatten any mode (P with transparency, LA, RGBA, L...) onto a white RGB canvas."""
    if im.mode == "RGB":
        return im
    if im.mode == "P" and "transparency" not in im.info:
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _load_clipart(
    path: str | Path, max_side: int, max_pixels: int, min_side: int
) -> Image.Image | None:
    """Decode one clip-art PNG onto white, longest side <= max_side; None if unusable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels or min(w, h) < min_side:
                    return None
                im.load()
                rgb = _on_white(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    lo, hi = zip(*rgb.getextrema(), strict=True)
    if max(hi) - min(lo) < 8:  # blank (e.g. fully transparent) image
        return None
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return rgb


# --------------------------------------------------------------------------- foolbox


def foolbox_dir() -> Path:
    """The installed ``foolbox/data`` folder, found without importing foolbox."""
    spec = importlib.util.find_spec("foolbox")  # locates the package; does not execute it
    for loc in (spec.submodule_search_locations or []) if spec else []:
        data = Path(loc) / "data"
        if data.is_dir():
            return data
    for entry in sys.path:
        data = Path(entry or ".") / "foolbox" / "data"
        if data.is_dir():
            return data
    raise FileNotFoundError("foolbox data not found: pip install --no-deps foolbox==3.3.4")


def label_of(path: str | Path) -> int:
    """Class number of a foolbox sample: the number after the last underscore in its name."""
    return int(Path(path).stem.rsplit("_", 1)[1])


def foolbox_imagenet(dest: Path) -> list[Path]:
    """Copy foolbox's 20 ImageNet JPEGs flat into ``dest`` (original names, see label_of)."""
    dest = Path(dest)
    src = sorted(foolbox_dir().glob("imagenet_*.jpg"))
    params = {"n": len(src)}
    if (record := _cached(dest, "foolbox", params)) is not None:
        return [dest / rel for rel in record["files"]]
    dest.mkdir(parents=True, exist_ok=True)
    for path in src:
        shutil.copyfile(path, dest / path.name)
    files = [p.name for p in src]
    _finish(dest, "foolbox", params, files)
    return [dest / rel for rel in files]


# --------------------------------------------------------------------------- photos


@lru_cache(maxsize=32)
def _photo_array(name: str) -> np.ndarray:
    """RGB uint8 array of a bundled photo: skimage/<name>, sklearn/<name> or a file path."""
    origin, _, key = name.partition("/")
    if origin == "skimage":
        import skimage.data as skd

        if key.startswith("motorcycle_"):
            left, right, _disp = skd.stereo_motorcycle()
            return left if key.endswith("left") else right
        return getattr(skd, key)()
    if origin == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{key}.jpg")
    with Image.open(name) as im:
        return np.asarray(im.convert("RGB"))


def skimage_photos(dest: Path) -> list[Path]:
    """Write the real colour photos bundled with scikit-image (and scikit-learn) to ``dest``.

    JPEG sources stay JPEG (quality 95), PNG sources stay PNG. Names: ``<photo>.<ext>``,
    scikit-learn's as ``sklearn_<photo>.jpg``. Every photo is loaded before anything is
    written: if one cannot be (package not installed, data file absent), FileNotFoundError
    names them all and nothing is written.
    """
    dest = Path(dest)
    params = {"skimage": list(SKIMAGE_PHOTOS), "sklearn": list(SKLEARN_PHOTOS)}
    if (record := _cached(dest, "skimage", params)) is not None:
        return [dest / rel for rel in record["files"]]
    jpeg_sources = {"rocket", "hubble_deep_field", "retina"}
    jobs = [(f"skimage/{n}", n, "jpg" if n in jpeg_sources else "png") for n in SKIMAGE_PHOTOS]
    jobs += [(f"sklearn/{n}", f"sklearn_{n}", "jpg") for n in SKLEARN_PHOTOS]
    arrays: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}  # source -> reason
    for key, _name, _ext in jobs:
        try:
            arrays[key] = _photo_array(key)
        except Exception as exc:  # ImportError, a data file absent from the wheel, ...
            missing[key] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if missing:
        reasons = sorted(set(missing.values()))
        raise FileNotFoundError(
            f"cannot write {len(missing)} of {len(jobs)} sample photos to {dest} "
            f"({', '.join(missing)}): {'; '.join(reasons)}. "
            "Install the app with `bash scripts/install.sh` (it brings scikit-image)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    for key, name, ext in jobs:
        im = Image.fromarray(np.ascontiguousarray(arrays[key][..., :3])).convert("RGB")
        rel = f"{name}.{ext}"
        if ext == "jpg":
            im.save(dest / rel, quality=95)
        else:
            im.save(dest / rel)
        files.append(rel)
    _finish(dest, "skimage", params, files)
    return [dest / rel for rel in files]


# --------------------------------------------------------------------------- openclipart


def openclipart_files(
    root: Path = OPENCLIPART_ROOT, exclude: Iterable[str] = ()
) -> dict[str, list[Path]]:
    """All clip-art PNGs by top-level category, sorted; symlinks are skipped.

    The Debian package links about 1,200 files into a second category (e.g.
    ``science/astronomy/x.png -> ../../geography/astronomy/x.png``); following them would
    give one image two labels, so only real files count.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} missing: apt-get install openclipart-png")
    skip = set(exclude)
    out: dict[str, list[Path]] = {}
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if cat in skip:
            continue
        found = [
            Path(d) / f
            for d, _dirs, names in os.walk(root / cat)
            for f in names
            if f.lower().endswith(".png") and not os.path.islink(os.path.join(d, f))
        ]
        if found:
            out[cat] = sorted(found)
    return out


def _clipart_names(cat_root: Path, files: list[Path]) -> dict[Path, str]:
    """``<stem>.png``, or the sub-path joined by ``__`` where stems collide in a category."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return {
        f: (
            f"{f.stem}.png"
            if stems[f.stem] == 1
            else "__".join(f.relative_to(cat_root).with_suffix("").parts) + ".png"
        )
        for f in files
    }


def _clipart_category(
    job: tuple[str, str, str, list[str], int, int, int, int, int],
) -> list[str]:
    dest, root, cat, files, want, seed, max_side, max_pixels, min_side = job
    paths = [Path(f) for f in files]
    names = _clipart_names(Path(root) / cat, paths)
    order = paths[:]
    random.Random(f"openclipart:{seed}:{cat}").shuffle(order)
    out_dir = Path(dest) / cat
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for path in order:
        if len(written) >= want:
            break
        im = _load_clipart(path, max_side, max_pixels, min_side)
        if im is None:
            continue
        im.save(out_dir / names[path], compress_level=1)
        written.append(f"{cat}/{names[path]}")
    return sorted(written)


def openclipart_labelled(
    dest: Path,
    per_category: int,
    categories: int | None = None,
    seed: int = 0,
    max_side: int = 512,
    *,
    exclude: Iterable[str] = OPENCLIPART_EXCLUDE,
    min_side: int = 32,
    max_pixels: int = 16_000_000,
    workers: int = 2,
    root: Path = OPENCLIPART_ROOT,
) -> dict[str, list[Path]]:
    """Sample clip-art into ``dest/<category>/<name>.png`` (label = top-level folder).

    ``categories``: keep the N largest categories (ties by name); None keeps all but
    ``exclude``. Each category gets up to ``per_category`` images, picked by a seeded
    shuffle; small categories give fewer. Transparency is flattened onto white and the
    longest side scaled down to ``max_side``. Files above ``max_pixels`` pixels, with a side
    below ``min_side``, undecodable or blank are skipped (the next candidate takes their place).
    """
    dest = Path(dest)
    exclude = sorted(set(exclude))
    params = {
        "per_category": per_category,
        "categories": categories,
        "seed": seed,
        "max_side": max_side,
        "exclude": exclude,
        "min_side": min_side,
        "max_pixels": max_pixels,
        "root": str(root),
    }
    if (record := _cached(dest, "openclipart", params)) is not None:
        return _grouped(dest, record["files"])
    by_cat = openclipart_files(root, exclude)
    cats = sorted(by_cat, key=lambda c: (-len(by_cat[c]), c))
    if categories is not None:
        cats = cats[:categories]
    dest.mkdir(parents=True, exist_ok=True)
    jobs = [
        (
            str(dest),
            str(root),
            c,
            [str(p) for p in by_cat[c]],
            per_category,
            seed,
            max_side,
            max_pixels,
            min_side,
        )
        for c in sorted(cats, key=lambda c: -min(per_category, len(by_cat[c])))
    ]
    total = sum(min(per_category, len(by_cat[c])) for c in cats)
    files = sorted(f for part in _run(_clipart_category, jobs, workers, total) for f in part)
    _finish(dest, "openclipart", params, files)
    return _grouped(dest, files)


# --------------------------------------------------------------------------- Fashion-MNIST


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    (magic,) = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte
        raise ValueError(f"{path}: unexpected IDX type {magic:#x}")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@lru_cache(maxsize=3)
def fashion_mnist_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N uint8) for split 'train', 'test' or 'all'.

    'all' is train (indices 0-59999) followed by test (60000-69999).
    """
    if split == "all":
        tr, te = fashion_mnist_arrays("train"), fashion_mnist_arrays("test")
        return np.concatenate([tr[0], te[0]]), np.concatenate([tr[1], te[1]])
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")
    img_name, lab_name = _FASHION_FILES[split]
    if not (FASHION_MNIST_ROOT / img_name).is_file():
        raise FileNotFoundError(
            f"{FASHION_MNIST_ROOT / img_name} missing: apt-get install dataset-fashion-mnist"
        )
    images = _read_idx(FASHION_MNIST_ROOT / img_name)
    labels = _read_idx(FASHION_MNIST_ROOT / lab_name)
    if len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST {split}: {len(images)} images, {len(labels)} labels")
    return images, labels


def _write_grey_pngs(job: tuple[str, list[str], np.ndarray, int | None]) -> None:
    dest, rels, images, side = job
    root = Path(dest)
    for rel, arr in zip(rels, images, strict=True):
        im = Image.fromarray(arr, "L")
        if side is not None and side != im.width:
            im = im.resize((side, side), Image.Resampling.BICUBIC)
        im.save(root / rel, compress_level=1)


def fashion_mnist_labelled(
    dest: Path,
    count: int,
    seed: int = 0,
    split: str = "train",
    upscale: int | None = None,
    *,
    workers: int = 2,
) -> dict[str, list[Path]]:
    """Write ``count`` Fashion-MNIST images as ``dest/<class_name>/<index>.png``.

    ``split``: 'train' (60,000), 'test' (10,000) or 'all' (70,000); ``count`` above the split
    size raises ValueError. A seeded random subset unless ``count`` is the whole split.
    ``<index>`` is the zero-padded position in the split. Images are 8-bit grey PNGs
    (white garment on black, as in the dataset); ``upscale`` is the output side in pixels
    (e.g. 224), None keeps 28x28.
    """
    dest = Path(dest)
    params = {"count": count, "seed": seed, "split": split, "upscale": upscale}
    if (record := _cached(dest, "fashion-mnist", params)) is not None:
        return _grouped(dest, record["files"])
    images, labels = fashion_mnist_arrays(split)
    if not 0 < count <= len(images):
        hint = " (use split='all' for up to 70,000)" if split != "all" else ""
        raise ValueError(f"count must be 1..{len(images)} for split {split!r}{hint}")
    if count == len(images):
        idx = np.arange(count)
    else:
        idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:count])
    for name in FASHION_CLASSES:
        (dest / name).mkdir(parents=True, exist_ok=True)
    rels = [f"{FASHION_CLASSES[labels[i]]}/{i:05d}.png" for i in idx]
    step = 2500
    jobs = [
        (str(dest), rels[s : s + step], images[idx[s : s + step]], upscale)
        for s in range(0, count, step)
    ]
    _run(_write_grey_pngs, jobs, workers, count)
    files = sorted(rels)
    _finish(dest, "fashion-mnist", params, files)
    grouped = _grouped(dest, files)
    return {name: grouped[name] for name in FASHION_CLASSES if name in grouped}


# --------------------------------------------------------------------------- camera roll


def _photo_sources() -> list[str]:
    sources = [str(p) for p in sorted(foolbox_dir().glob("imagenet_*.jpg"))]
    sources += [
        f"skimage/{n}"
        for n in SKIMAGE_PHOTOS
        if n not in {"retina", "immunohistochemistry", "hubble_deep_field"}
    ]
    sources += [f"sklearn/{n}" for n in SKLEARN_PHOTOS]
    return sources


def _render_photo(src: str, side: int, rng: random.Random) -> Image.Image:
    """Random crop (35-100% of the area, 4:3/3:4/1:1), flip and colour jitter of a photo."""
    arr = _photo_array(src)
    h, w = arr.shape[:2]
    aspect = rng.choice((4 / 3, 3 / 4, 1.0))
    area = rng.uniform(0.35, 1.0) * w * h
    cw = min(w, round((area * aspect) ** 0.5))
    ch = min(h, round(cw / aspect))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = Image.fromarray(np.ascontiguousarray(arr[y : y + ch, x : x + cw, :3]))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enhance(im).enhance(rng.uniform(0.8, 1.2))
    scale = side / max(im.size)
    return im.resize(
        (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
        Image.Resampling.LANCZOS,
    )


def _render_clipart(im: Image.Image, side: int, rng: random.Random) -> Image.Image:
    """Crop clip-art (already on white) to its content; place it on a white canvas."""
    bbox = ImageChops.difference(im, Image.new("RGB", im.size, (255, 255, 255))).getbbox()
    if bbox:
        im = im.crop(bbox)
    aspect = rng.choice((4 / 3, 3 / 4, 1.0))
    cw, ch = (side, round(side / aspect)) if aspect >= 1 else (round(side * aspect), side)
    fill = rng.uniform(0.6, 0.95)
    scale = min(cw * fill / im.width, ch * fill / im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im.resize(size, Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas = Image.new("RGB", (cw, ch), (255, 255, 255))
    canvas.paste(im, (rng.randint(0, cw - im.width), rng.randint(0, ch - im.height)))
    return canvas


def _camera_chunk(job: tuple[str, list[tuple[int, str, str]], int, int, list[str]]) -> list[str]:
    dest, items, side, seed, photos = job
    used: list[str] = []
    for i, kind, src in items:
        rng = random.Random(f"camera:{seed}:{i}")
        im = None
        if kind == "clipart":
            art = _load_clipart(src, 2 * side, 16_000_000, 32)
            if art is not None:
                im = _render_clipart(art, side, rng)
        if im is None:  # a photo, or a clip-art file that cannot be used
            src = src if kind == "photo" else photos[i % len(photos)]
            im = _render_photo(src, side, rng)
        im.save(Path(dest) / f"IMG_{i:05d}.jpg", quality=rng.randint(85, 92), optimize=False)
        used.append(src)
    return used


def camera_roll_jpegs(
    dest: Path,
    count: int,
    side: int = 512,
    seed: int = 0,
    *,
    photo_fraction: float = 0.15,
    workers: int = 2,
) -> list[Path]:
    """Write ``count`` camera-roll style JPEGs ``dest/IMG_<nnnnn>.jpg``, long side ``side``.

    About 85% are openclipart PNGs flattened on white and placed on a 4:3/3:4/square
    canvas; the rest are random crops / flips / colour jitter of the 20 foolbox ImageNet
    photos and the scikit-image/scikit-learn everyday photos. JPEG quality 85-92. When
    ``count`` exceeds the clip-art pool, clip-art repeats with different placement. The
    source of every file is stored under "sources" in ``dest/.simimg-dataset.json``.
    Real pixels only. Without openclipart installed, all images come from the photos.
    """
    dest = Path(dest)
    params = {"count": count, "side": side, "seed": seed, "photo_fraction": photo_fraction}
    if (record := _cached(dest, "camera-roll", params)) is not None:
        return [dest / rel for rel in record["files"]]
    if count < 1:
        raise ValueError("count must be positive")
    photos = _photo_sources()
    try:
        cliparts = [str(p) for files in openclipart_files(exclude=()).values() for p in files]
    except FileNotFoundError:
        cliparts = []
    rng = random.Random(f"camera-plan:{seed}")
    rng.shuffle(cliparts)
    plan: list[tuple[int, str, str]] = []
    ci = 0
    for i in range(count):
        if not cliparts or rng.random() < photo_fraction:
            plan.append((i, "photo", rng.choice(photos)))
        else:
            plan.append((i, "clipart", cliparts[ci % len(cliparts)]))
            ci += 1
    dest.mkdir(parents=True, exist_ok=True)
    step = 250
    jobs = [(str(dest), plan[s : s + step], side, seed, photos) for s in range(0, count, step)]
    sources = [s for part in _run(_camera_chunk, jobs, workers, count) for s in part]
    files = [f"IMG_{i:05d}.jpg" for i in range(count)]
    _finish(dest, "camera-roll", params, files, sources=sources)
    return [dest / rel for rel in files]


# --------------------------------------------------------------------------- icon styles

#: npm package with the same icons in two styles (MIT licence), pinned for repeatable sets.
TABLER_PACKAGE = "@tabler/icons@3.52.0"
ICON_STYLES: tuple[str, str] = ("outline", "filled")
ICON_CACHE = Path(os.environ.get("SIMIMG_ICON_CACHE", Path.home() / ".cache" / "simimg-icons"))


def tabler_icons_dir(cache: Path = ICON_CACHE, package: str = TABLER_PACKAGE) -> Path:
    """The unpacked npm package's ``icons/`` folder, fetched once with ``npm pack``.

    Raises FileNotFoundError when npm is missing or the registry cannot be reached.
    """
    unpacked = cache / package.replace("/", "+")
    icons = unpacked / "package" / "icons"
    if (icons / ICON_STYLES[1]).is_dir():
        return icons
    unpacked.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["npm", "pack", package, "--silent", "--pack-destination", str(unpacked)],
            capture_output=True, text=True, timeout=300, check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise FileNotFoundError(f"npm pack {package} failed: {exc}") from exc
    tarballs = sorted(unpacked.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise FileNotFoundError(f"npm pack {package} failed: {done.stderr.strip()[-300:]}")
    with tarfile.open(tarballs[-1]) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/icons/")]
        tar.extractall(unpacked, members=members, filter="data")
    return icons


def _render_svg(svg: Path, side: int) -> Image.Image:
    """Render one icon SVG black on white, ``side`` pixels square."""
    import io

    import cairosvg

    png = cairosvg.svg2png(url=str(svg), output_width=side, output_height=side)
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return _on_white(im)


def icon_styles_labelled(
    dest: Path,
    count: int | None = None,
    seed: int = 0,
    side: int = 224,
    *,
    cache: Path = ICON_CACHE,
    package: str = TABLER_PACKAGE,
) -> dict[str, list[Path]]:
    """Render icons that exist in both styles as ``dest/<style>/<icon name>.png``.

    Label = file name: ``outline/alarm.png`` and ``filled/alarm.png`` are the same symbol.
    ``count``: a seeded sample of that many names (None: every name in both styles).
    """
    dest = Path(dest)
    params = {"count": count, "seed": seed, "side": side, "package": package}
    if (record := _cached(dest, "icon-styles", params)) is not None:
        return _grouped(dest, record["files"])
    icons = tabler_icons_dir(cache, package)
    names = sorted(
        set.intersection(*({p.stem for p in (icons / s).glob("*.svg")} for s in ICON_STYLES))
    )
    if count is not None:
        if not 0 < count <= len(names):
            raise ValueError(f"count must be 1..{len(names)} (icons in both styles)")
        names = sorted(random.Random(seed).sample(names, count))
    files = []
    for style in ICON_STYLES:
        (dest / style).mkdir(parents=True, exist_ok=True)
        for name in names:
            _render_svg(icons / style / f"{name}.svg", side).save(
                dest / style / f"{name}.png", compress_level=1
            )
            files.append(f"{style}/{name}.png")
    _finish(dest, "icon-styles", params, sorted(files))
    return _grouped(dest, files)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.datasets KIND DEST [options]``: export one data set."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "kind",
        choices=[
            "foolbox", "skimage", "openclipart", "fashion-mnist", "camera-roll", "icon-styles"
        ],
    )
    ap.add_argument("dest", type=Path)
    ap.add_argument(
        "--count", type=int, default=1000, help="fashion-mnist / camera-roll / icon-styles"
    )
    ap.add_argument("--per-category", type=int, default=50, help="openclipart")
    ap.add_argument("--categories", type=int, default=None, help="openclipart: N largest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="train", help="fashion-mnist: train, test or all")
    ap.add_argument("--upscale", type=int, default=None, help="fashion-mnist: output side px")
    ap.add_argument("--side", type=int, default=512, help="camera-roll: long side px")
    ap.add_argument(
        "--expect", action="append", default=[], metavar="FILE",
        help="fail unless FILE (relative to DEST) is among the files written; repeatable",
    )
    args = ap.parse_args(argv)
    try:
        return _export(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {args.kind}: {exc}", file=sys.stderr)
        return 1


def _flatten(labelled: dict[str, list[Path]] | None) -> list[Path]:
    return [path for paths in (labelled or {}).values() for path in paths]


def _check_written(dest: Path, paths: list[Path], expect: Sequence[str]) -> None:
    """Raise FileNotFoundError unless images were written and every ``expect`` is one of them."""
    written = {path.relative_to(dest).as_posix() for path in paths if path.is_file()}
    absent = [name for name in expect if name not in written]
    if not written or absent:
        raise FileNotFoundError(
            f"wrote {len(written)} images to {dest}"
            + (f", not {', '.join(absent)}" if absent else "")
        )


def _export(args: argparse.Namespace) -> int:
    """Write the data set ``args`` asks for, check ``--expect``, print what was written."""
    t0 = time.perf_counter()
    labelled: dict[str, list[Path]] | None = None
    flat: list[Path] | None = None
    if args.kind == "foolbox":
        flat = foolbox_imagenet(args.dest)
    elif args.kind == "skimage":
        flat = skimage_photos(args.dest)
    elif args.kind == "openclipart":
        labelled = openclipart_labelled(
            args.dest, args.per_category, args.categories, seed=args.seed
        )
    elif args.kind == "fashion-mnist":
        labelled = fashion_mnist_labelled(
            args.dest, args.count, seed=args.seed, split=args.split, upscale=args.upscale
        )
    elif args.kind == "icon-styles":
        labelled = icon_styles_labelled(args.dest, args.count, seed=args.seed)
    else:
        flat = camera_roll_jpegs(args.dest, args.count, side=args.side, seed=args.seed)
    took = time.perf_counter() - t0
    _check_written(args.dest, flat if flat is not None else _flatten(labelled), args.expect)

    if labelled is not None:
        for label, paths in labelled.items():
            print(f"{label:24s} {len(paths):6d}")
        n = sum(len(p) for p in labelled.values())
        print(f"{n} images in {len(labelled)} labelled folders under {args.dest} ({took:.1f} s)")
    else:
        assert flat is not None
        if args.kind == "foolbox":
            for p in flat:
                print(f"{p.name:28s} label {label_of(p)}")
        elif len(flat) <= 30:
            for p in flat:
                print(p.name)
        print(f"{len(flat)} images in {args.dest} ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
