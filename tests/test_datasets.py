"""Quick checks of benchmarks.datasets: real labelled image folders on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import datasets as ds

REPO = Path(__file__).resolve().parent.parent

needs_fashion = pytest.mark.skipif(
    not (ds.FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed "
    "(apt-get install dataset-fashion-mnist)",
)
needs_openclipart = pytest.mark.skipif(
    not ds.OPENCLIPART_ROOT.is_dir(),
    reason="Debian package openclipart-png not installed (apt-get install openclipart-png)",
)


def test_foolbox_imagenet_gives_20_labelled_jpegs(tmp_path: Path) -> None:
    paths = ds.foolbox_imagenet(tmp_path)
    assert len(paths) == 20
    assert all(p.suffix == ".jpg" and p.parent == tmp_path for p in paths)
    labels = [ds.label_of(p) for p in paths]
    assert all(0 <= x < 1000 for x in labels)
    assert ds.label_of("imagenet_00_243.jpg") == 243
    with Image.open(paths[0]) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    # Idempotent: a second call reuses the export.
    mtime = paths[0].stat().st_mtime_ns
    assert ds.foolbox_imagenet(tmp_path) == paths
    assert paths[0].stat().st_mtime_ns == mtime


def test_skimage_photos_are_real_colour_images(tmp_path: Path) -> None:
    paths = ds.skimage_photos(tmp_path)
    names = {p.stem for p in paths}
    assert {"chelsea", "coffee", "astronaut", "rocket"} <= names
    for p in paths:
        with Image.open(p) as im:
            assert im.mode == "RGB" and min(im.size) >= 200
    assert len(paths) == len(ds.SKIMAGE_PHOTOS) + len(ds.SKLEARN_PHOTOS)


def _datasets_cli(*args: str, block: str | None = None) -> subprocess.CompletedProcess:
    """``python -m benchmarks.datasets ARGS`` in a subprocess; ``block``: a package made
    unimportable there, as on a machine where it is not installed."""
    code = "import runpy, sys\n"
    if block:
        code += f"sys.modules[{block!r}] = None\n"
    code += "runpy.run_module('benchmarks.datasets', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def test_skimage_step_without_scikit_image_fails_at_once_naming_it(tmp_path: Path) -> None:
    dest = tmp_path / "photos"
    done = _datasets_cli("skimage", str(dest), "--expect", "chelsea.png", block="skimage")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: skimage: cannot write 9 of 11 sample photos")
    assert "skimage/chelsea" in lines[0] and "ModuleNotFoundError" in lines[0]
    assert "scripts/install.sh" in lines[0]
    assert not dest.exists()  # nothing half-written, no export record


def test_expect_names_a_file_the_step_did_not_write(tmp_path: Path) -> None:
    done = _datasets_cli("foolbox", str(tmp_path), "--expect", "imagenet_05_853.jpg",
                         "--expect", "chelsea.png")
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: foolbox: wrote 20 images to {tmp_path}, not chelsea.png"
    ok = _datasets_cli("foolbox", str(tmp_path), "--expect", "imagenet_05_853.jpg")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith(f"20 images in {tmp_path}")


@needs_fashion
def test_fashion_mnist_small_count_gives_class_folders(tmp_path: Path) -> None:
    out = ds.fashion_mnist_labelled(tmp_path, 300, seed=1)
    assert list(out) == list(ds.FASHION_CLASSES)  # 300 random picks hit all 10 classes
    assert sum(len(v) for v in out.values()) == 300
    for label, paths in out.items():
        assert all(p.parent.name == label for p in paths)
    with Image.open(out["bag"][0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    # Deterministic for a seed; a different request replaces the old files.
    again = ds.fashion_mnist_labelled(tmp_path / "again", 300, seed=1)
    assert [p.name for v in again.values() for p in v] == [p.name for v in out.values() for p in v]
    small = ds.fashion_mnist_labelled(tmp_path, 20, seed=2, upscale=64)
    on_disk = sorted(p for p in tmp_path.glob("*/*.png"))
    assert on_disk == sorted(p for v in small.values() for p in v)
    with Image.open(on_disk[0]) as im:
        assert im.size == (64, 64)
    with pytest.raises(ValueError, match="split='all'"):
        ds.fashion_mnist_labelled(tmp_path / "x", 70_000)


@needs_openclipart
def test_openclipart_small_sample_decodes(tmp_path: Path) -> None:
    out = ds.openclipart_labelled(tmp_path, per_category=3, categories=4, max_side=128)
    assert len(out) == 4
    for label, paths in out.items():
        assert len(paths) == 3
        for p in paths:
            assert p.parent.name == label
            with Image.open(p) as im:
                im.load()
                assert im.mode == "RGB" and max(im.size) <= 128
    record = json.loads((tmp_path / ds.MARKER).read_text())
    assert record["kind"] == "openclipart" and len(record["files"]) == 12


@needs_openclipart
def test_camera_roll_small(tmp_path: Path) -> None:
    paths = ds.camera_roll_jpegs(tmp_path, 12, side=256, seed=3)
    assert [p.name for p in paths] == [f"IMG_{i:05d}.jpg" for i in range(12)]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and max(im.size) == 256
    sources = json.loads((tmp_path / ds.MARKER).read_text())["sources"]
    assert len(sources) == 12
