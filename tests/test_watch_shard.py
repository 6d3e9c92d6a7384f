"""``ingest --shard i/n`` partitions a folder exactly; ``ingest --watch`` picks up new files.

Watch tests use real folders and real images and never depend on timing: they poll for the
expected result with a generous deadline.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from ingest.report import IngestReport
from ingest.runner import FolderIngester
from ingest.watch import FolderWatcher, PendingFiles
from service.errors import ConfigError
from service.images import sha256_hex
from service.locations import locations_of
from service.pipeline import EmbeddingPipeline
from service.store import open_store
from service.store.base import VectorStore
from service.store.schema import point_id_for
from service.walker import Shard, iter_image_files
from tests.conftest import make_settings

DEADLINE = 120.0  # seconds; generous on a loaded 2-core machine


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline:.0f}s waiting for {what}")
        time.sleep(0.05)


def make_tree(root: Path, count: int = 300) -> set[Path]:
    """``count`` image-named files in nested folders, plus files the walker must skip."""
    made = set()
    for i in range(count):
        folder = root / f"d{i % 7}" / f"e{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{i}.{('jpg', 'png', 'JPEG', 'webp')[i % 4]}"
        path.write_bytes(b"x")
        made.add(path)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.jpg").write_bytes(b"x")
    return made


# -- sharding ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_are_disjoint_and_complete(tmp_path: Path, count: int) -> None:
    everything = make_tree(tmp_path)
    assert set(iter_image_files(tmp_path)) == everything
    parts = [set(iter_image_files(tmp_path, Shard(i, count))) for i in range(count)]
    assert sum(len(p) for p in parts) == len(everything)  # disjoint ...
    assert set().union(*parts) == everything  # ... and complete
    assert all(parts), "every shard of 300 files gets some"


def test_shards_depend_only_on_relative_paths(tmp_path: Path) -> None:
    """Workers may mount the folder at different places: the split must not change."""
    make_tree(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    for i in range(3):
        here, there = (
            {p.relative_to(root) for p in iter_image_files(root, Shard(i, 3))}
            for root in (tmp_path / "a", tmp_path / "elsewhere" / "b")
        )
        assert here == there


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "0/0", "1/2/3"])
def test_bad_shard_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        Shard.parse(text)


def test_cli_shards_ingest_every_image_exactly_once(
    tmp_path: Path, session_models_dir: Path, imagenet_dir: Path
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir)
    runner = CliRunner()
    added = []
    for i in range(3):
        result = runner.invoke(
            app,
            ["--data-dir", str(settings.data_dir), "ingest", str(imagenet_dir),
             "--shard", f"{i}/3", "--json"],
            env={"QDRANT_URL": ""},
        )
        assert result.exit_code == 0, result.output
        added.append(json.loads(result.stdout.strip().splitlines()[-1])["added"])
    assert sum(added) == 20 and all(added)
    store = open_store(settings)
    try:
        assert store.count() == 20
    finally:
        store.close()


# -- debounce ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pending_file_is_released_only_after_a_quiet_stable_period(tmp_path: Path) -> None:
    clock = FakeClock()
    pending = PendingFiles(debounce=2.0, clock=clock)
    path = tmp_path / "a.jpg"
    path.write_bytes(b"part one")
    pending.touch(path)
    clock.now += 1.0
    assert pending.ready() == []  # not quiet long enough
    clock.now += 1.5
    with path.open("ab") as f:  # still being written, and no event seen
        f.write(b" and part two")
    assert pending.ready() == []  # size changed across the wait: wait again
    assert len(pending) == 1
    clock.now += 1.0
    assert pending.ready() == []
    clock.now += 1.5
    released = pending.ready()
    assert [p for p, _ in released] == [path]
    assert released[0][1][0] == len(b"part one and part two")
    assert len(pending) == 0


def test_touch_restarts_the_wait_and_vanished_files_are_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    pending = PendingFiles(debounce=2.0, clock=clock)
    kept, gone = tmp_path / "kept.jpg", tmp_path / "gone.jpg"
    for path in (kept, gone):
        path.write_bytes(b"x")
        pending.touch(path)
    clock.now += 1.9
    pending.touch(kept)  # another event
    gone.unlink()
    clock.now += 0.2
    assert pending.ready() == []
    assert len(pending) == 1
    clock.now += 2.0
    assert [p for p, _ in pending.ready()] == [kept]


def test_watcher_accepts_only_visible_images_of_its_shard(
    tmp_path: Path, store: VectorStore, mobilenet_pipeline: EmbeddingPipeline
) -> None:
    names = [f"sub/img_{i}.jpg" for i in range(40)]
    shard = Shard(1, 3)
    watcher = FolderWatcher(FolderIngester(store, mobilenet_pipeline), tmp_path, shard=shard)
    try:
        for name in names:
            assert watcher.accepts(tmp_path / name) == shard.owns(name)
        owned = next(n for n in names if shard.owns(n))
        assert not watcher.accepts(tmp_path / ".partial" / owned)
        assert not watcher.accepts(tmp_path / owned.replace(".jpg", ".txt"))
        assert not watcher.accepts(tmp_path.parent / "outside.jpg")
    finally:
        watcher.close()


# -- watching a real folder ----------------------------------------------------------


@pytest.fixture
def running_watcher(
    tmp_path: Path, store: VectorStore, mobilenet_pipeline: EmbeddingPipeline
) -> Iterator[tuple[Path, FolderWatcher, list[IngestReport]]]:
    folder = tmp_path / "inbox"
    folder.mkdir()
    rounds: list[IngestReport] = []
    watcher = FolderWatcher(
        FolderIngester(store, mobilenet_pipeline), folder, debounce=0.3, on_report=rounds.append
    )
    watcher.start()
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    yield folder, watcher, rounds
    watcher.stop()
    thread.join(timeout=DEADLINE)
    assert not thread.is_alive(), "watcher did not stop"
    watcher.close()


def test_watch_ingests_files_added_after_start(
    running_watcher: tuple[Path, FolderWatcher, list[IngestReport]],
    store: VectorStore, imagenet_dir: Path,
) -> None:
    folder, watcher, rounds = running_watcher
    images = sorted(imagenet_dir.glob("*.jpg"))
    # a plain copy, a file written in two pieces, and a folder moved in whole
    shutil.copyfile(images[0], folder / "copied.jpg")
    data = images[1].read_bytes()
    with (folder / "slow.jpg").open("wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(0.1)
        f.write(data[len(data) // 2 :])
    staging = folder.parent / "staging"
    (staging / "deep").mkdir(parents=True)
    shutil.copyfile(images[2], staging / "deep" / "moved.jpg")
    staging.rename(folder / "album")
    (folder / "readme.txt").write_text("ignored")
    (folder / ".partial.jpg").write_bytes(data[:100])  # hidden: ignored

    wait_for(lambda: store.count() == 3, "three new images to be stored")
    paths = {r.payload["path"] for page in store.scroll() for r in page}
    assert paths == {"copied.jpg", "slow.jpg", "album/deep/moved.jpg"}
    # the points are stored before the round ends and adds its report to the totals
    wait_for(lambda: sum(r.added for r in rounds) == 3, "the round's report")
    assert watcher.total.added == 3


def test_watch_applies_edits_copies_and_deletions(
    running_watcher: tuple[Path, FolderWatcher, list[IngestReport]],
    store: VectorStore, imagenet_dir: Path,
) -> None:
    folder, watcher, _ = running_watcher
    images = sorted(imagenet_dir.glob("*.jpg"))
    first, second = (point_id_for(sha256_hex(images[i].read_bytes())) for i in (3, 4))

    def stored() -> dict[str, list[str]]:
        return {r.id: sorted(loc.path for loc in locations_of(r.payload))
                for page in store.scroll() for r in page}

    target = folder / "photo.jpg"
    shutil.copyfile(images[3], target)
    wait_for(lambda: stored() == {first: ["photo.jpg"]}, "the first image to be stored")
    shutil.copyfile(images[4], target)  # same name, new content: the place moves to it
    wait_for(lambda: stored() == {second: ["photo.jpg"]}, "the edit to be applied")
    shutil.copyfile(images[4], folder / "copy.jpg")  # known content: one more location
    wait_for(lambda: stored() == {second: ["copy.jpg", "photo.jpg"]}, "the copy")
    wait_for(lambda: watcher.total.already_stored >= 1, "the copy's round in the totals")
    target.unlink()
    wait_for(lambda: stored() == {second: ["copy.jpg"]}, "the deletion to be applied")


def test_cli_watch_picks_up_a_new_file_and_stops_on_ctrl_c(
    tmp_path: Path, session_models_dir: Path, imagenet_dir: Path
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir)
    folder = tmp_path / "inbox"
    folder.mkdir()
    images = sorted(imagenet_dir.glob("*.jpg"))
    shutil.copyfile(images[0], folder / "before.jpg")
    env = {k: v for k, v in os.environ.items() if k != "QDRANT_URL"}
    cli = Path(sys.executable).with_name("simimg-admin")
    proc = subprocess.Popen(
        [str(cli), "--data-dir", str(settings.data_dir), "ingest", str(folder),
         "--watch", "--json", "--debounce", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def report_adding_one() -> dict:
        """The next JSON report that added an image (rounds that added none are skipped)."""
        end = time.monotonic() + DEADLINE
        while (left := end - time.monotonic()) > 0:
            try:
                report = json.loads(lines.get(timeout=left))
            except queue.Empty:
                break
            if report["added"]:
                return report
        proc.kill()
        pytest.fail(f"no report of an added image; stderr: {proc.stderr.read()}")

    try:
        assert report_adding_one()["found"] == 1  # the initial pass
        shutil.copyfile(images[1], folder / "after.jpg")
        assert report_adding_one()["added"] == 1  # picked up while watching
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=DEADLINE) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = open_store(settings)
    try:
        assert store.count() == 2
    finally:
        store.close()
