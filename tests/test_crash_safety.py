"""Crash safety: ``kill -9`` a real ``simimg-admin ingest`` at many moments, restart, verify.

Each round starts the real CLI on a folder of real images and kills it with SIGKILL either
after a random delay (start-up, store creation, first batches) or once the store's
write-ahead log has grown past a random fraction of the expected total plus a random
delay (mid-ingest: decoding, inference or an upsert in flight). After every kill the store
must open and hold only whole points; a final uninterrupted run must leave every image
stored exactly once, its vector equal to a fresh embedding and its payload describing the
file. The kill moments are random; no assertion depends on timing.

``SIMIMG_CRASH_IMAGES`` (default 160) and ``SIMIMG_CRASH_KILLS`` (default 8) size the run;
``SIMIMG_CRASH_SEED`` picks the kill moments; ``SIMIMG_RELIABILITY_STATS`` receives counts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from benchmarks.datasets import camera_roll_jpegs
from service.config import Settings
from service.images import sha256_hex
from service.pipeline import EmbeddingPipeline
from service.store.edge import EdgeStore
from service.store.schema import VECTOR_MOBILENET, point_id_for
from tests.conftest import make_settings

IMAGES = int(os.environ.get("SIMIMG_CRASH_IMAGES", "160"))
KILLS = int(os.environ.get("SIMIMG_CRASH_KILLS", "8"))
SEED = int(os.environ.get("SIMIMG_CRASH_SEED", "0"))
WAL_BYTES_PER_POINT = 6_500  # measured: one 1280-d point + payload in qdrant-edge's WAL
ROUND_LIMIT_S = 300  # a safety net only: a round this long is killed like any other
REPO = Path(__file__).resolve().parent.parent
STATS: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    yield
    print(f"\ncrash-safety counts: {json.dumps(STATS, sort_keys=True)}")
    target = os.environ.get("SIMIMG_RELIABILITY_STATS")
    if target:
        with open(target, "a") as fh:
            fh.write(json.dumps({"suite": "crash", **STATS}) + "\n")


@pytest.fixture(scope="module")
def crash_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real camera-roll JPEGs, two exact copies under other names and two bad files."""
    root = tmp_path_factory.mktemp("crash-images")
    photos = root / "photos"
    files = camera_roll_jpegs(photos, IMAGES, side=256, seed=SEED)
    copies = root / "copies"
    copies.mkdir()
    shutil.copyfile(files[0], copies / "copy-of-first.jpg")
    shutil.copyfile(files[-1], copies / "copy-of-last.jpg")
    (root / "bad").mkdir()
    (root / "bad" / "empty.jpg").write_bytes(b"")
    (root / "bad" / "truncated.jpg").write_bytes(files[1].read_bytes()[:500])
    return root


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QDRANT_URL", "QDRANT_API_KEY")}
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(REPO)
    return env


def cli(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "--data-dir", str(data_dir), *args]


def wal_bytes(settings: Settings) -> int:
    """Bytes the store's write-ahead log occupies on disk (grows with every write)."""
    wal = settings.data_dir / "qdrant-edge" / settings.collection / "wal"
    try:
        return sum(entry.stat().st_blocks * 512 for entry in wal.iterdir())
    except OSError:
        return 0


def check_whole_points(settings: Settings) -> int:
    """Open the store after a kill: every point must be whole. Returns the count."""
    with EdgeStore(settings) as store:
        store.ensure_collection()
        records = [r for page in store.scroll(with_vectors=[VECTOR_MOBILENET]) for r in page]
        for record in records:
            assert record.id == point_id_for(record.payload["sha256"])
            assert {"path", "root", "width", "height", "format", "file_size"} <= set(
                record.payload
            )
            vector = record.vectors[VECTOR_MOBILENET]
            assert vector.shape == (1280,)
            assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
        assert store.count() == len(records)
        return len(records)


def run_and_kill(
    command: list[str], settings: Settings, rng: random.Random, stored: int, total: int,
    mode: str, max_delay: float = 2.5,
) -> bool:
    """Start ``command``; SIGKILL it at a random moment. True if it was killed."""
    log = settings.data_dir.parent / "round.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(command, stdout=fh, stderr=fh, env=cli_env(), cwd=REPO,
                                start_new_session=True)
    started = time.monotonic()
    if mode == "delay":
        deadline = started + rng.uniform(0.0, max_delay)
        target = None
    else:
        deadline = started + ROUND_LIMIT_S
        remaining = max(total - stored, 1) * WAL_BYTES_PER_POINT
        target = wal_bytes(settings) + int(rng.uniform(0.02, 0.45) * remaining)
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if target is not None and wal_bytes(settings) >= target:
                time.sleep(rng.uniform(0.0, 0.4))
                break
            time.sleep(0.01)
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ingest_killed_at_random_moments_stores_every_image_exactly_once(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    crash_folder: Path,
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir)
    files = sorted(p for p in crash_folder.rglob("*.jpg"))
    contents = {p: p.read_bytes() for p in files}
    good = {p: data for p, data in contents.items() if p.parent.name != "bad"}
    distinct = {sha256_hex(data) for data in good.values()}
    command = cli(settings.data_dir, "ingest", str(crash_folder), "--batch-size", "8",
                  "--json")
    rng = random.Random(SEED)
    stored = 0
    for round_number in range(KILLS):
        mode = "delay" if round_number % 4 == 0 else "wal"
        killed = run_and_kill(command, settings, rng, stored, len(distinct), mode)
        before = stored
        stored = check_whole_points(settings)  # the store reopens after every kill
        assert before <= stored <= len(distinct)
        STATS["ingest_kills"] = STATS.get("ingest_kills", 0) + killed
        if killed and 0 < stored < len(distinct) and stored > before:
            STATS["ingest_kills_mid_run"] = STATS.get("ingest_kills_mid_run", 0) + 1
        STATS["ingest_rounds"] = STATS.get("ingest_rounds", 0) + 1

    done = subprocess.run(command, capture_output=True, text=True, env=cli_env(), cwd=REPO,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["found"] == len(files)
    assert sorted(f["path"] for f in report["failed"]) == ["bad/empty.jpg", "bad/truncated.jpg"]
    assert report["added"] + report["already_stored"] + report["duplicates"] == len(good)

    with EdgeStore(settings) as store:
        records = [r for page in store.scroll(with_vectors=[VECTOR_MOBILENET]) for r in page]
        assert store.count() == len(distinct)
    assert len(records) == len(distinct)
    by_sha = {r.payload["sha256"]: r for r in records}
    assert set(by_sha) == distinct, "every image exactly once, nothing else"
    root = crash_folder.resolve()
    paths_by_sha: dict[str, list[str]] = {}
    for path, data in good.items():
        paths_by_sha.setdefault(sha256_hex(data), []).append(path.relative_to(crash_folder)
                                                             .as_posix())
    sample = list(good)
    for start in range(0, len(sample), 32):
        chunk = sample[start : start + 32]
        prepared = [mobilenet_pipeline.prepare(contents[p], str(p)) for p in chunk]
        fresh = mobilenet_pipeline.embed(prepared, [VECTOR_MOBILENET])[VECTOR_MOBILENET]
        for path, item, vector in zip(chunk, prepared, fresh, strict=True):
            record = by_sha[item.sha256]
            np.testing.assert_allclose(record.vectors[VECTOR_MOBILENET], vector, atol=1e-4)
            payload = record.payload
            assert payload["root"] == str(root)
            assert payload["path"] in paths_by_sha[item.sha256]
            assert payload["file_size"] == len(contents[path])
            with Image.open(path) as image:
                assert (payload["width"], payload["height"]) == ImageOps.exif_transpose(
                    image
                ).size
            assert payload["format"] == "JPEG"
    STATS["ingest_images_verified"] = len(distinct)
    STATS["ingest_files"] = len(files)


# ----------------------------------------------------------------- cluster


def labels_of(settings: Settings) -> dict[str, int | None]:
    with EdgeStore(settings) as store:
        return {r.id: r.payload.get("cluster") for page in store.scroll() for r in page}


def test_cluster_killed_at_random_moments_leaves_old_or_new_labels_never_half(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    crash_folder: Path,
) -> None:
    """After a kill and the next ``clusters`` call: exactly run A's or run B's labels."""
    from ingest.runner import FolderIngester
    from ingest.walker import iter_image_files
    from service.clustering_runs import current_run

    settings = make_settings(tmp_path / "data", session_models_dir)
    with EdgeStore(settings) as store:
        store.ensure_collection()
        FolderIngester(store, mobilenet_pipeline).ingest(
            crash_folder, list(iter_image_files(crash_folder))
        )
    run_a = ["cluster", "--eps", "0.2", "--min-samples", "3", "--dims", "none", "--json"]
    run_b = ["cluster", "--eps", "0.3", "--min-samples", "4", "--dims", "none", "--json"]
    started = time.monotonic()
    first = subprocess.run(cli(settings.data_dir, *run_a), capture_output=True, text=True,
                           env=cli_env(), cwd=REPO, timeout=600)
    full_run = time.monotonic() - started  # kill moments are drawn over a whole run
    assert first.returncode == 0, first.stderr[-2000:]
    record_a = current_run(settings)
    assert record_a is not None
    labels_a = labels_of(settings)
    assert all(label is not None for label in labels_a.values())
    rng = random.Random(SEED + 1)
    seen_b: list[dict[str, int | None]] = []
    raws: list[dict[str, int | None]] = []
    for _ in range(KILLS):
        killed = run_and_kill(cli(settings.data_dir, *run_b), settings, rng, 0, 1, "delay",
                              max_delay=1.1 * full_run)
        STATS["cluster_kills"] = STATS.get("cluster_kills", 0) + killed
        raws.append(labels_of(settings))  # before any roll-forward: may be half and half
        listing = subprocess.run(cli(settings.data_dir, "clusters", "--json"),
                                 capture_output=True, text=True, env=cli_env(), cwd=REPO,
                                 timeout=600)
        assert listing.returncode == 0, listing.stderr[-2000:]
        record = current_run(settings)
        assert record is not None
        labels = labels_of(settings)
        if record["run_id"] == record_a["run_id"]:
            assert labels == labels_a, "previous run's labels must be intact"
            STATS["cluster_rounds_old_labels"] = STATS.get("cluster_rounds_old_labels", 0) + 1
        else:
            assert record.get("eps") == pytest.approx(0.3)
            seen_b.append(labels)
            STATS["cluster_rounds_new_labels"] = STATS.get("cluster_rounds_new_labels", 0) + 1
    final = subprocess.run(cli(settings.data_dir, *run_b), capture_output=True, text=True,
                           env=cli_env(), cwd=REPO, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    labels_b = labels_of(settings)
    assert all(label is not None for label in labels_b.values())
    for labels in seen_b:
        assert labels == labels_b, "a rolled-forward run must equal a clean run"
    # Kills that left the payload half old, half new until the next command rolled it forward.
    STATS["cluster_kills_mid_write"] = sum(raw not in (labels_a, labels_b) for raw in raws)
