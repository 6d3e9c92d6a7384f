"""`simimg-admin train` / `reconstruct` as a user runs them: real processes, real images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from service.autoencoder.files import CURRENT, current_model_info, read_pointer
from service.config import Settings
from service.store import open_store
from service.store.base import PointFilter
from service.store.schema import VECTOR_AUTOENCODER
from tests.test_cli import run_admin

FAST = ("--epochs", "2", "--image-size", "32")  # seconds, not minutes, on 2 cores


@pytest.fixture
def ingested(settings: Settings, imagenet_dir: Path) -> Settings:
    done = run_admin(settings, "ingest", str(imagenet_dir), "--json")
    assert done.returncode == 0, done.stderr
    return settings


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_autoencoder_search_before_training_is_a_one_line_error(
    ingested: Settings, imagenet_dir: Path
) -> None:
    query = sorted(imagenet_dir.glob("*.jpg"))[0]
    done = run_admin(ingested, "search", str(query), "--space", "autoencoder")
    assert done.returncode == 1
    assert "no autoencoder model is trained yet" in _error_line(done.stderr)
    assert done.stdout == ""


def test_train_reembeds_every_point_and_search_finds_the_query_first(
    ingested: Settings, imagenet_dir: Path, tmp_path: Path
) -> None:
    done = run_admin(ingested, "train", *FAST)
    assert done.returncode == 0, done.stderr
    assert "val loss" in done.stderr and "re-embedded 20 images" in done.stderr
    version = read_pointer(ingested, CURRENT)
    assert version is not None

    store = open_store(ingested)
    try:
        assert store.count(PointFilter(has_vector=VECTOR_AUTOENCODER)) == 20
        assert store.count(PointFilter(not_autoencoder_model=version)) == 0
    finally:
        store.close()

    queries = sorted(imagenet_dir.glob("*.jpg"))
    done = run_admin(ingested, "search", *map(str, queries), "--space", "autoencoder", "--json")
    assert done.returncode == 0, done.stderr
    for query, line in zip(queries, done.stdout.splitlines(), strict=True):
        results = json.loads(line)["results"]
        assert results[0]["path"] == query.name
        assert results[0]["payload"]["autoencoder_model"] == version

    info = current_model_info(ingested)
    assert info is not None and (info["version"], info["n_images"]) == (version, 20)

    out = tmp_path / "pair.png"
    done = run_admin(ingested, "reconstruct", str(queries[0]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with Image.open(out) as pair:
        assert pair.format == "PNG" and pair.width > pair.height
    checkpoint = ingested.models_dir / "autoencoder" / version
    assert (checkpoint / "loss_curve.png").is_file()

    # Training again replaces the model: no point keeps a vector of the old one.
    done = run_admin(ingested, "train", *FAST, "--seed", "1")
    assert done.returncode == 0, done.stderr
    new_version = read_pointer(ingested, CURRENT)
    assert new_version not in (None, version)
    store = open_store(ingested)
    try:
        assert store.count(PointFilter(not_autoencoder_model=new_version)) == 0
    finally:
        store.close()


def test_train_with_another_latent_dim_fails_in_one_line(ingested: Settings) -> None:
    done = run_admin(ingested, "train", *FAST, "--latent-dim", "128")
    assert done.returncode == 1
    line = _error_line(done.stderr)
    assert "latent_dim" in line and "256" in line and "128" in line


def test_train_on_a_folder_with_broken_files_skips_them(
    settings: Settings, imagenet_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(imagenet_dir, folder)
    jpeg = sorted(folder.glob("*.jpg"))[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 20])
    (folder / "text.png").write_text("this is not a png")
    (folder / "empty.jpg").write_bytes(b"")
    done = run_admin(settings, "train", *FAST, "--folder", str(folder))
    assert done.returncode == 0, done.stderr
    for name in ("truncated.jpg", "text.png", "empty.jpg"):
        assert f"skipped {folder / name}" in done.stderr
    assert "on 20 images (3 skipped)" in done.stderr.replace("\n", " ")
    assert read_pointer(settings, CURRENT) is not None


def test_reconstruct_before_training_is_a_one_line_error(
    settings: Settings, imagenet_dir: Path, tmp_path: Path
) -> None:
    query = sorted(imagenet_dir.glob("*.jpg"))[0]
    done = run_admin(settings, "reconstruct", str(query), "-o", str(tmp_path / "x.png"))
    assert done.returncode == 1
    assert "no autoencoder model is trained yet" in _error_line(done.stderr)
