"""Crash safety: ``kill -9`` real ``simimg-admin ingest``, ``cluster`` and ``train`` runs.

Ingest: each round starts the real CLI on a folder of real images and kills it with SIGKILL either
after a random delay (start-up, store creation, first batches) or once the store's
write-ahead log has grown past a random fraction of the expected total plus a random
delay (mid-ingest: decoding, inference or an upsert in flight). After every kill the store
must open and hold only whole points; a final uninterrupted run must leave every image
stored exactly once, its vector equal to a fresh embedding and its payload describing the
file. The kill moments are random; no assertion depends on timing.

Cluster: run B replacing run A's labels is killed at random delays over a whole run.
Train: model B replacing model A is killed at random delays and at chosen events (an epoch
line, the checkpoint's temporary directory, the PENDING or CURRENT pointer being written)
plus a random delay; after each kill the current model must load and search consistently.

``SIMIMG_CRASH_IMAGES`` (default 400) and ``SIMIMG_CRASH_KILLS`` (default 8) size the ingest
and cluster runs, ``SIMIMG_TRAIN_KILLS`` (default 6) the train run; ``SIMIMG_CRASH_SEED``
picks the kill moments; ``SIMIMG_RELIABILITY_STATS`` receives counts.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from benchmarks.datasets import camera_roll_jpegs
from service.atomic import is_temp_name
from service.autoencoder.files import (
    CURRENT,
    LOSS_CURVE_FILE,
    META_FILE,
    MODEL_FILE,
    PENDING,
    autoencoder_dir,
    checkpoint_dir,
    read_pointer,
)
from service.config import Settings
from service.embedders.autoencoder import AutoencoderEmbedder, load_autoencoder_version
from service.images import decode_image, sha256_hex
from service.locations import stored_file
from service.pipeline import EmbeddingPipeline, read_image_bytes
from service.store.base import PointRecord
from service.store.edge import EdgeStore
from service.store.schema import (
    PAYLOAD_AE_MODEL,
    VECTOR_AUTOENCODER,
    VECTOR_MOBILENET,
    point_id_for,
)
from tests.conftest import STORED_VECTOR_ATOL, make_settings, report_case_counts
from tests.processes import REPO, cli, cli_env

IMAGES = int(os.environ.get("SIMIMG_CRASH_IMAGES", "400"))
KILLS = int(os.environ.get("SIMIMG_CRASH_KILLS", "8"))
SEED = int(os.environ.get("SIMIMG_CRASH_SEED", "0"))
WAL_BYTES_PER_POINT = 6_500  # measured: one 1280-d point + payload in qdrant-edge's WAL
ROUND_LIMIT_S = 300  # a safety net only: a round this long is killed like any other
STATS: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    yield
    report_case_counts("crash", STATS)


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
    mode: str, max_delay: float = 2.5, ready: Callable[[], bool] | None = None,
    settle: float = 0.4, env: dict[str, str] | None = None,
) -> bool:
    """Start ``command``; SIGKILL it at a random moment. True if it was killed.

    ``mode``: "delay" (a random delay up to ``max_delay``), "at" (exactly ``max_delay``),
    "wal" (the WAL grew by a random part of what is left to write) or "ready" (``ready()``
    became true). In the last two a
    random delay up to ``settle`` follows the event.
    """
    log = settings.data_dir.parent / "round.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(command, stdout=fh, stderr=fh, env={**cli_env(), **(env or {})},
                                cwd=REPO, start_new_session=True)
    started = time.monotonic()
    target = None
    if mode == "delay":
        deadline = started + rng.uniform(0.0, max_delay)
    elif mode == "at":  # exactly max_delay seconds after the start (the caller drew it)
        deadline = started + max_delay
    elif mode == "wal":
        deadline = started + ROUND_LIMIT_S
        remaining = max(total - stored, 1) * WAL_BYTES_PER_POINT
        target = wal_bytes(settings) + int(rng.uniform(0.02, 0.45) * remaining)
    else:
        assert mode == "ready" and ready is not None
        deadline = started + ROUND_LIMIT_S
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if (target is not None and wal_bytes(settings) >= target) or (
                ready is not None and ready()
            ):
                time.sleep(rng.uniform(0.0, settle))
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


def timed_run(command: list[str], mkdir: Path | None = None) -> float:
    """Wall time of one complete run of ``command`` (which must succeed)."""
    if mkdir is not None:
        mkdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=cli_env(), cwd=REPO,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.monotonic() - started


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
    # Calibrate on this machine (a fixed delay would miss the run on a fast one): how long a
    # start-up takes (an empty folder) and a whole ingest of the folder (a scratch store).
    scratch_empty = make_settings(tmp_path / "scratch-empty", session_models_dir).data_dir
    scratch_full = make_settings(tmp_path / "scratch-full", session_models_dir).data_dir
    startup_s = timed_run(cli(scratch_empty, "ingest", str(tmp_path / "empty")),
                          mkdir=tmp_path / "empty")
    full_s = timed_run(cli(scratch_full, "ingest", str(crash_folder), "--batch-size", "8"))
    stored = 0
    for round_number in range(KILLS):
        left = (len(distinct) - stored) / len(distinct)
        if round_number % 4 == 0:  # during start-up and store creation
            mode, delay = "delay", 1.2 * startup_s
        elif round_number % 4 == 1:  # once the WAL grew by a random part of what is left
            mode, delay = "wal", 0.0
        else:  # a random moment of what is left of the run, as timed on this machine
            mode = "at"
            delay = startup_s + rng.uniform(0.05, 0.95) * max(full_s - startup_s, 0.1) * left
        killed = run_and_kill(command, settings, rng, stored, len(distinct), mode,
                              max_delay=delay)
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
            np.testing.assert_allclose(record.vectors[VECTOR_MOBILENET], vector,
                                       atol=STORED_VECTOR_ATOL)
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
    from service.clustering_runs import current_run
    from service.walker import iter_image_files

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


# ----------------------------------------------------------------- train

TRAIN_KILLS = int(os.environ.get("SIMIMG_TRAIN_KILLS", "3"))
TRAIN_A = ["train", "--epochs", "2", "--image-size", "32", "--seed", "0"]
TRAIN_B = ["train", "--epochs", "3", "--image-size", "32", "--seed", "1", "--patience", "9"]
# Re-embed in batches of 2 so a kill there can leave some points done and some not.
TRAIN_ENV = {"SIMIMG_BATCH_SIZE": "2"}
# One cycle of kill targets, in the order a run reaches them (a kill after the PENDING
# pointer is written makes the next runs resume instead of training, so training targets
# come first). The phase a kill really landed in is read from the state it left.
TRAIN_TARGETS = ("delay", "training", "checkpoint", "reembed", "reembed", "switch")


def ae_entries(settings: Settings) -> set[str]:
    folder = autoencoder_dir(settings)
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def fresh_ae_vectors(embedder: AutoencoderEmbedder, files: list[Path],
                     settings: Settings) -> np.ndarray:
    """Embed files from scratch the way a point's file is embedded (decode, square, model)."""
    inputs = []
    for path in files:
        data = read_image_bytes(path, settings.max_file_bytes)
        image = decode_image(data, max_pixels=settings.max_pixels, min_side=embedder.min_side,
                             source=str(path)).image
        inputs.append(embedder.preprocess(image))
    return embedder.embed(np.stack(inputs))


def check_train_state(settings: Settings, complete: set[str]) -> tuple[str, list[PointRecord]]:
    """After a kill: CURRENT (and PENDING) name whole checkpoints that load; a model that
    became current since the last check covers every point; every point tagged with one of
    these models holds exactly that model's vector. Returns CURRENT and the points."""
    current = read_pointer(settings, CURRENT)
    assert current is not None, "a trained model must stay current"
    embedders: dict[str, AutoencoderEmbedder] = {}
    for version in {current, read_pointer(settings, PENDING)} - {None}:
        assert version is not None
        folder = checkpoint_dir(settings, version)
        assert {MODEL_FILE, META_FILE, LOSS_CURVE_FILE} <= {p.name for p in folder.iterdir()}
        embedders[version] = load_autoencoder_version(settings, version)  # loads, or raises
    with EdgeStore(settings) as store:
        records = [r for page in store.scroll(with_vectors=[VECTOR_AUTOENCODER]) for r in page]
    if current not in complete:  # switched in this round: only after every point has its vector
        tags = Counter(r.payload.get(PAYLOAD_AE_MODEL) for r in records)
        assert tags == {current: len(records)}, f"{current} became current over {dict(tags)}"
    for version, embedder in embedders.items():
        tagged = [r for r in records if r.payload.get(PAYLOAD_AE_MODEL) == version]
        if not tagged:
            continue
        files = [stored_file(r.payload) for r in tagged]
        fresh = fresh_ae_vectors(embedder, [f for f in files if f is not None], settings)
        assert len(fresh) == len(tagged)
        for record, vector in zip(tagged, fresh, strict=True):
            np.testing.assert_allclose(record.vectors[VECTOR_AUTOENCODER], vector,
                                       atol=STORED_VECTOR_ATOL,
                                       err_msg=f"{record.payload['path']} tagged {version}")
    complete.update(embedders)
    return current, records


def check_autoencoder_search(
    settings: Settings, n_points: int, queries: list[Path]
) -> tuple[str, list[PointRecord]]:
    """The real ``search --space autoencoder``, which first finishes an interrupted re-embed
    (``open_collection``). Afterwards nothing is pending, the current model covers every
    point, all of them come back (k = all points) and each query image is first.
    Returns the current model and the points as the search left them."""
    done = subprocess.run(
        cli(settings.data_dir, "search", *map(str, queries), "--space", "autoencoder",
            "--k", str(n_points), "--json"),
        capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    current = read_pointer(settings, CURRENT)
    assert current is not None and read_pointer(settings, PENDING) is None
    with EdgeStore(settings) as store:
        records = [r for page in store.scroll() for r in page]
    tagged = {r.id for r in records if r.payload.get(PAYLOAD_AE_MODEL) == current}
    assert len(tagged) == len(records) == n_points, "the current model covers every point"
    path_of = {r.id: r.payload["path"] for r in records}
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(queries)
    for query, line in zip(queries, lines, strict=True):
        results = json.loads(line)["results"]
        assert {r["id"] for r in results} == tagged
        assert all(r["payload"][PAYLOAD_AE_MODEL] == current for r in results)
        ids = [pid for pid in tagged if path_of[pid] == query.name]
        if ids:
            assert results[0]["id"] == ids[0], f"{query.name} is not first"
    return current, records


def train_phase(settings: Settings, killed: bool, before: dict[str, object], log_text: str,
                records: list[PointRecord]) -> str:
    """Where in ``train`` a kill landed, judged from what it left behind."""
    if not killed:
        return "completed"
    current, pending = read_pointer(settings, CURRENT), read_pointer(settings, PENDING)
    if current != before["current"]:
        return "after_switch"
    if pending is not None and pending != current and (
        pending != before["pending"] or "resuming pending model" in log_text
    ):
        done = sum(r.payload.get(PAYLOAD_AE_MODEL) == pending for r in records)
        if done == len(records):
            return "reembed_done_before_switch"
        was = before["tags"].get(pending, 0) if isinstance(before["tags"], dict) else 0
        return "reembed" if done > was else "pending_before_reembed_writes"
    if ae_entries(settings) - before["entries"]:  # type: ignore[operator]
        return "checkpoint_write"
    return "training" if "val loss" in log_text else "startup_or_first_epoch"


def test_train_killed_at_random_moments_leaves_old_or_new_model_never_half(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, photo_dir: Path, crash_folder: Path,
) -> None:
    """Model A is current; ``train`` of model B is killed at random moments over its run.

    After each kill CURRENT names a whole checkpoint that loads, every point tagged with a
    model holds that model's vector, and the real autoencoder search returns exactly the
    points of the current model. A final run leaves every point with model B's vector.
    """
    from ingest.runner import FolderIngester
    from service.walker import iter_image_files

    folder = tmp_path / "images"
    folder.mkdir()
    # ImageNet JPEGs, scikit-image photos and the camera-roll JPEGs (enough points that the
    # re-embed lasts long enough to be hit by kills).
    for src in [*sorted(imagenet_dir.glob("*.jpg")),
                *sorted(p for p in photo_dir.iterdir() if p.suffix in (".jpg", ".png")),
                *sorted((crash_folder / "photos").glob("*.jpg"))]:
        shutil.copyfile(src, folder / src.name)
    files = sorted(folder.iterdir())
    settings = make_settings(tmp_path / "data", session_models_dir)
    with EdgeStore(settings) as store:
        store.ensure_collection()
        FolderIngester(store, mobilenet_pipeline).ingest(folder, list(iter_image_files(folder)))
        assert store.count() == len(files)

    started = time.monotonic()
    first = subprocess.run(cli(settings.data_dir, *TRAIN_A), capture_output=True, text=True,
                           env={**cli_env(), **TRAIN_ENV}, cwd=REPO, timeout=900)
    full_run = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-2000:]
    version_a = read_pointer(settings, CURRENT)
    assert version_a is not None
    epoch_s = max(float(s) for s in re.findall(r"val loss \S+\s+\((\S+)s\)", first.stderr))
    reembed_s = float(re.search(r"re-embedded \d+ images in (\S+)s", first.stderr).group(1))
    complete = {version_a}
    print(f"\ntrain A: {full_run:.1f}s, epoch {epoch_s}s, re-embed {reembed_s}s")
    current, records = check_train_state(settings, complete)
    assert {r.payload.get(PAYLOAD_AE_MODEL) for r in records} == {version_a}

    rng = random.Random(SEED + 2)
    log = settings.data_dir.parent / "round.log"
    command = cli(settings.data_dir, *TRAIN_B)
    coverage: list[int] = []
    for round_number in range(TRAIN_KILLS):
        target = TRAIN_TARGETS[round_number % len(TRAIN_TARGETS)]
        offset = log.stat().st_size if log.exists() else 0
        before: dict[str, object] = {
            "current": read_pointer(settings, CURRENT), "pending": read_pointer(settings, PENDING),
            "entries": ae_entries(settings),
            "tags": Counter(r.payload.get(PAYLOAD_AE_MODEL) for r in records),
        }
        round_started = time.time()

        def round_log(offset: int = offset) -> str:
            with open(log, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")

        def pointer_written(name: str, since: float = round_started) -> bool:
            try:
                return (autoencoder_dir(settings) / name).stat().st_mtime >= since
            except FileNotFoundError:
                return False

        ready, settle = {
            "delay": (None, 0.0),
            "training": (lambda: "val loss" in round_log(), 1.5 * epoch_s),
            "checkpoint": (lambda: any(is_temp_name(n) and n.startswith(".ae-")
                                       for n in ae_entries(settings)), 0.5),
            "reembed": (lambda: pointer_written(PENDING)
                        or "resuming pending model" in round_log(), 1.5 * reembed_s + 0.2),
            "switch": (lambda: pointer_written(CURRENT), 0.02),
        }[target]
        killed = run_and_kill(command, settings, rng, 0, 1, "delay" if ready is None else "ready",
                              max_delay=1.2 * full_run, ready=ready, settle=settle, env=TRAIN_ENV)
        current, records = check_train_state(settings, complete)
        phase = train_phase(settings, killed, before, round_log(), records)
        tags = Counter(r.payload.get(PAYLOAD_AE_MODEL) for r in records)
        print(f"train round {round_number}: target {target}, landed {phase}, CURRENT {current}, "
              f"tags {dict(tags)}")
        # Right after the kill, the current model covers every point, except after a kill
        # inside the re-embed (or between its end and the switch), where the rest already
        # carry the pending model. The next command (here: search) finishes that re-embed.
        tagged = [r for r in records if r.payload.get(PAYLOAD_AE_MODEL) == current]
        coverage.append(100 * len(tagged) // len(records))
        pending_before = read_pointer(settings, PENDING)
        current, records = check_autoencoder_search(settings, len(records),
                                                    rng.sample(files, 4))
        if pending_before is not None:
            assert current == pending_before, "the interrupted model was completed"
            complete.add(current)
            STATS["train_rounds_rolled_forward"] = (
                STATS.get("train_rounds_rolled_forward", 0) + 1
            )
        STATS["train_rounds"] = STATS.get("train_rounds", 0) + 1
        STATS["train_kills"] = STATS.get("train_kills", 0) + killed
        STATS[f"train_phase_{phase}"] = STATS.get(f"train_phase_{phase}", 0) + 1
        STATS["train_rounds_partial_coverage"] = (
            STATS.get("train_rounds_partial_coverage", 0) + (len(tagged) < len(records))
        )

    done = subprocess.run(command, capture_output=True, text=True,
                          env={**cli_env(), **TRAIN_ENV}, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    version_b = read_pointer(settings, CURRENT)
    assert version_b is not None and version_b != version_a
    assert read_pointer(settings, PENDING) is None
    current, records = check_train_state(settings, complete)
    assert len(records) == len(files)
    assert all(r.payload.get(PAYLOAD_AE_MODEL) == version_b for r in records), "B everywhere"
    assert check_autoencoder_search(settings, len(records), rng.sample(files, 3))[0] == version_b
    assert not [n for n in ae_entries(settings) if is_temp_name(n)], "temp dirs pruned"
    STATS["train_points"] = len(records)
    STATS["train_final_resumed"] = int("resumed pending model" in done.stderr)
    STATS["train_min_coverage_percent"] = min(coverage, default=100)
