"""Shared fixtures: real images from installed packages and a warm MobileNet export.

The ONNX export of MobileNet is built once per test session and linked into each test's
data directory, so tests exercise the real cached-export path without paying for it twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.datasets import foolbox_imagenet, skimage_photos
from service.config import Settings
from service.embedders.mobilenet import load_mobilenet
from service.pipeline import EmbeddingPipeline
from service.store import open_store
from service.store.base import VectorStore

# Stored vectors are float16 by default (SIMIMG_VECTOR_DATATYPE): each component keeps 11
# significant bits, so a unit vector read back differs from the original by < 5e-4 per
# component and a cosine score by ~1e-4.
STORED_VECTOR_ATOL = 1e-3

# Tests never download: make any accidental hub access fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def report_case_counts(suite: str, counts: dict[str, int]) -> None:
    """Print a reliability suite's case counts, and append them to $SIMIMG_RELIABILITY_STATS
    (one JSON line) so docs/reliability.md can quote a real run."""
    print(f"\n{suite} counts: {json.dumps(counts, sort_keys=True)}")
    target = os.environ.get("SIMIMG_RELIABILITY_STATS")
    if target:
        with open(target, "a") as handle:
            handle.write(json.dumps({"suite": suite, **counts}) + "\n")


@pytest.fixture(scope="session")
def session_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("models-cache")
    load_mobilenet(Settings(data_dir=data_dir))  # builds and verifies the ONNX export once
    return data_dir / "models" / "mobilenet"


def make_settings(data_dir: Path, session_models_dir: Path, **overrides: object) -> Settings:
    """Settings for a fresh data dir that reuses the session's verified MobileNet export."""
    mobilenet_dir = data_dir / "models" / "mobilenet"
    if not mobilenet_dir.exists():
        mobilenet_dir.parent.mkdir(parents=True, exist_ok=True)
        mobilenet_dir.symlink_to(session_models_dir, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k in ("QDRANT_URL", "QDRANT_API_KEY")}
    overrides.setdefault("qdrant_url", None)
    return Settings.from_env(env, data_dir=data_dir, **overrides)


@pytest.fixture
def settings(tmp_path: Path, session_models_dir: Path) -> Settings:
    return make_settings(tmp_path / "data", session_models_dir)


@pytest.fixture(scope="session")
def mobilenet_pipeline(session_models_dir: Path) -> EmbeddingPipeline:
    settings = Settings(data_dir=session_models_dir.parent.parent)
    return EmbeddingPipeline(settings, [load_mobilenet(settings)])


@pytest.fixture
def store(settings: Settings) -> Iterator[VectorStore]:
    opened = open_store(settings)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def imagenet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 real ImageNet JPEGs (foolbox), label in the file name."""
    dest = tmp_path_factory.mktemp("imagenet")
    foolbox_imagenet(dest)
    return dest


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos from scikit-image: queries from outside the collection."""
    dest = tmp_path_factory.mktemp("photos")
    skimage_photos(dest)
    return dest
