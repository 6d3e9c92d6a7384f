"""The collection stays true to the disk: deletions, moves, renames, copies and edits.

Real ImageNet JPEGs, the real MobileNet export and a real embedded store. The embedder is
wrapped to count the images it embeds, so every test can check that a move, a rename or a
copy costs no embedding and that each new content costs exactly one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from benchmarks.sync import CountingEmbedder
from ingest.report import IngestReport
from ingest.runner import FolderIngester
from ingest.sync import EmptyRootError, sync_roots
from ingest.watch import FolderWatcher
from service.config import Settings
from service.embedders.mobilenet import load_mobilenet
from service.images import sha256_hex
from service.locations import locations_of
from service.pipeline import EmbeddingPipeline
from service.search import Searcher
from service.store import open_store
from service.store.base import PointFilter, VectorStore
from service.store.schema import point_id_for
from service.walker import Shard
from tests.conftest import make_settings

Disk = dict[tuple[str, str], str]  # (root, relative path) -> sha256 of the file
ROOTS = ("a", "b")


Counting = tuple[CountingEmbedder, EmbeddingPipeline]


@pytest.fixture(scope="module")
def counting(session_models_dir: Path) -> tuple[CountingEmbedder, EmbeddingPipeline]:
    settings = Settings(data_dir=session_models_dir.parent.parent)
    embedder = CountingEmbedder(load_mobilenet(settings))
    return embedder, EmbeddingPipeline(settings, [embedder])


class Contents(list):
    """The test photos' bytes, with a short repr (Hypothesis prints its arguments)."""

    def __repr__(self) -> str:
        return f"<{len(self)} photos>"


@pytest.fixture(scope="module")
def contents(imagenet_dir: Path) -> list[bytes]:
    """Ten real photos, of ten different file sizes.

    An edit is recognised by a changed size or mtime; distinct sizes make every edit in
    these tests visible however fast the file system's clock ticks.
    """
    by_size = {}
    for path in sorted(imagenet_dir.glob("*.jpg")):
        by_size.setdefault(len(path.read_bytes()), path.read_bytes())
    assert len(by_size) >= 10
    return Contents(list(by_size.values())[:10])


def disk_state(roots: list[Path]) -> Disk:
    return {
        (str(root.resolve()), path.relative_to(root).as_posix()): sha256_hex(path.read_bytes())
        for root in roots
        for path in root.rglob("*.jpg")
    }


def check_mirror(store: VectorStore, roots: list[Path]) -> None:
    """Every file is found at its location; no location names a missing file; one point per
    distinct content."""
    disk = disk_state(roots)
    points = {r.id: r for page in store.scroll() for r in page}
    assert set(points) == {point_id_for(sha) for sha in disk.values()}
    for (root, path), sha in disk.items():
        places = {loc.place for loc in locations_of(points[point_id_for(sha)].payload)}
        assert (root, path) in places, f"{path} is not found at its location"
    for record in points.values():
        locations = locations_of(record.payload)
        assert locations, "a point without a location"
        for loc in locations:
            assert disk.get(loc.place) == record.payload["sha256"], f"stale location {loc}"
        first = min(loc.place for loc in locations)
        assert (record.payload["root"], record.payload["path"]) == first


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@contextlib.contextmanager
def two_roots(session_models_dir: Path) -> Iterator[tuple[Path, list[Path], VectorStore]]:
    """A fresh store and the empty folders ``a`` and ``b`` (one Hypothesis example each)."""
    with tempfile.TemporaryDirectory(prefix="simimg-sync-") as tmp:
        base = Path(tmp)
        roots = [base / r for r in ROOTS]
        for root in roots:
            root.mkdir()
        store = open_store(make_settings(base / "data", session_models_dir))
        try:
            yield base, roots, store
        finally:
            store.close()


# -- the user's story from the issue ---------------------------------------------------


def test_delete_move_copy_edit_then_ingest_again(
    tmp_path: Path, settings: Settings, store: VectorStore, counting: Counting,
    contents: list[bytes],
) -> None:
    embedder, pipeline = counting
    root = tmp_path / "photos"
    for i in range(8):
        write(root / f"img{i}.jpg", contents[i])
    ingester = FolderIngester(store, pipeline)
    first = sync_roots(ingester, [root])
    assert (first.added, first.found) == (8, 8)
    before = embedder.embedded

    (root / "img0.jpg").unlink()  # delete
    (root / "sub").mkdir()
    (root / "img1.jpg").rename(root / "sub" / "img1.jpg")  # move into a sub-folder
    (root / "img2.jpg").rename(root / "renamed.jpg")  # rename
    shutil.copyfile(root / "img3.jpg", root / "sub" / "copy-of-3.jpg")  # copy
    write(root / "img4.jpg", contents[8])  # edit in place: new content
    write(root / "img5.jpg", contents[6])  # edit in place: now a copy of img6

    report = sync_roots(ingester, [root])
    assert embedder.embedded - before == 1  # only contents[8] is new
    assert (report.added, report.moved, report.copies, report.removed, report.edited) == (
        1, 2, 1, 1, 2
    )
    assert report.unchanged == 3  # img3, img6, img7
    assert report.points_deleted == 3  # img0 deleted, img4's and img5's old contents
    check_mirror(store, [root])
    assert store.count() == 6

    # Search results carry every location; a moved image is found at its new path.
    img3 = point_id_for(sha256_hex(contents[3]))
    hits = Searcher(store, pipeline).search_by_id(img3, k=3)
    assert hits[0].id == img3
    assert sorted(loc["path"] for loc in hits[0].locations) == [
        "img3.jpg", "sub/copy-of-3.jpg"
    ]
    moved = store.retrieve([point_id_for(sha256_hex(contents[1]))])[0]
    assert [loc.path for loc in locations_of(moved.payload)] == ["sub/img1.jpg"]

    # Deleting the first copy keeps the image: it is still on disk elsewhere.
    (root / "img3.jpg").unlink()
    again = sync_roots(ingester, [root])
    assert (again.removed, again.points_deleted) == (1, 0)
    check_mirror(store, [root])
    unchanged = sync_roots(ingester, [root])
    assert (unchanged.unchanged, unchanged.added, unchanged.removed) == (7, 0, 0)


def test_other_roots_are_left_alone_and_missing_files_can_be_kept(
    tmp_path: Path, settings: Settings, store: VectorStore, counting: Counting,
    contents: list[bytes],
) -> None:
    _, pipeline = counting
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "x.jpg", contents[0])
    write(b / "y.jpg", contents[1])
    ingester = FolderIngester(store, pipeline)
    sync_roots(ingester, [a])
    sync_roots(ingester, [b])
    (b / "y.jpg").unlink()
    sync_roots(ingester, [a])  # b is not synced: its image stays
    assert store.count() == 2
    assert store.count(PointFilter(location_root=str(b.resolve()))) == 1

    write(a / "z.jpg", contents[2])
    (a / "x.jpg").unlink()
    kept = sync_roots(ingester, [a], keep_missing=True)
    assert (kept.added, kept.removed, store.count()) == (1, 0, 3)
    gone = sync_roots(ingester, [a, b], allow_empty=True)  # b is empty now
    assert (gone.removed, gone.points_deleted, store.count()) == (2, 2, 1)
    check_mirror(store, [a, b])


def test_an_empty_root_is_refused_unless_allowed(
    tmp_path: Path, settings: Settings, store: VectorStore, counting: Counting,
    contents: list[bytes],
) -> None:
    _, pipeline = counting
    root = tmp_path / "drive"
    write(root / "a.jpg", contents[0])
    write(root / "b.jpg", contents[1])
    ingester = FolderIngester(store, pipeline)
    sync_roots(ingester, [root])
    for path in root.iterdir():
        path.unlink()  # the drive's mount point, without the drive
    with pytest.raises(EmptyRootError, match=r"has no image files, .* 2 images there"):
        sync_roots(ingester, [root])
    assert store.count() == 2  # nothing was touched
    # A shard worker that owns none of the images has nothing to refuse or remove.
    shard = next(Shard(i, 8) for i in range(8)
                 if not any(Shard(i, 8).owns(p) for p in ("a.jpg", "b.jpg")))
    assert sync_roots(ingester, [root], shard=shard).removed == 0
    report = sync_roots(ingester, [root], allow_empty=True)
    assert (report.removed, store.count()) == (2, 0)


def test_a_folder_that_cannot_be_listed_is_not_taken_for_deleted(
    tmp_path: Path, settings: Settings, counting: tuple[CountingEmbedder, EmbeddingPipeline],
    contents: list[bytes],
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root lists every folder")
    _, pipeline = counting
    root = tmp_path / "photos"
    write(root / "locked" / "a.jpg", contents[0])
    store = open_store(settings)
    try:
        ingester = FolderIngester(store, pipeline)
        sync_roots(ingester, [root])
        (root / "locked").chmod(0)
        report = sync_roots(ingester, [root])
        assert report.removed == 0 and store.count() == 1
    finally:
        (root / "locked").chmod(0o755)
        store.close()


# -- random sequences of changes -------------------------------------------------------

OPS = ("add", "delete", "move", "rename", "copy", "edit", "touch")
op_strategy = st.tuples(
    st.sampled_from(OPS),
    st.integers(0, 99),  # which existing file
    st.sampled_from(ROOTS),  # target root
    st.integers(0, 9),  # which content
    st.sampled_from(("", "sub/", "sub/deeper/")),  # target folder
)


def apply_op(base: Path, op: tuple[str, int, str, int, str], contents: list[bytes],
             serial: Iterator[int]) -> None:
    """Apply one change to the folders under ``base`` (a no-op when it does not apply)."""
    kind, pick, root, content, folder = op
    files = sorted(p for r in ROOTS for p in (base / r).rglob("*.jpg"))
    target = base / root / folder / f"f{next(serial)}.jpg"
    if kind == "add" or not files:
        write(target, contents[content])
        return
    source = files[pick % len(files)]
    if kind == "delete":
        source.unlink()
    elif kind == "move":
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
    elif kind == "rename":
        source.rename(source.with_name(f"renamed{next(serial)}.jpg"))
    elif kind == "copy":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    elif kind == "edit":  # in place, to another content (or back to an earlier one)
        current = source.read_bytes()
        write(source, next(c for c in contents[content:] + contents if c != current))
    else:  # touch: a new mtime, the same content
        stat = source.stat()
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def stored_ids(store: VectorStore) -> set[str]:
    return {r.id for page in store.scroll(with_payload=False) for r in page}


# No shrinking: each example costs real ingests; a failure prints its whole op list.
RANDOM_RUNS = settings(deadline=None, suppress_health_check=list(HealthCheck),
                       phases=[Phase.explicit, Phase.reuse, Phase.generate])


@settings(RANDOM_RUNS, max_examples=int(os.environ.get("SIMIMG_SYNC_EXAMPLES", "20")))
@given(ops=st.lists(op_strategy, min_size=3, max_size=9))
def test_random_changes_each_followed_by_an_ingest(
    ops: list[tuple[str, int, str, int, str]], session_models_dir: Path,
    counting: Counting, contents: list[bytes],
) -> None:
    embedder, pipeline = counting
    serial = iter(range(10**6))
    with two_roots(session_models_dir) as (base, roots, store):
        ingester = FolderIngester(store, pipeline)
        for op in ops:
            apply_op(base, op, contents, serial)
            known, before = stored_ids(store), embedder.embedded
            sync_roots(ingester, roots, allow_empty=True)
            check_mirror(store, roots)
            new = {point_id_for(sha) for sha in disk_state(roots).values()} - known
            assert embedder.embedded - before == len(new), op


def wait_until(condition: Callable[[], object], what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            condition()
            return
        except AssertionError:
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}") from None
            time.sleep(0.1)


@settings(RANDOM_RUNS, max_examples=int(os.environ.get("SIMIMG_WATCH_EXAMPLES", "6")))
@given(ops=st.lists(op_strategy, min_size=3, max_size=7))
# Found by this test: the only file of root b moved to root a empties b, which the watcher
# saw happen, so it is not refused as a detached drive.
@example(ops=[("add", 0, "b", 9, "sub/deeper/"), ("move", 0, "a", 9, ""),
              ("move", 0, "a", 7, "sub/")])
def test_random_changes_followed_by_watch_mode(
    ops: list[tuple[str, int, str, int, str]], session_models_dir: Path,
    counting: Counting, contents: list[bytes],
) -> None:
    embedder, pipeline = counting
    serial = iter(range(10**6))
    with two_roots(session_models_dir) as (base, roots, store):
        rounds: list[IngestReport] = []
        watcher = FolderWatcher(FolderIngester(store, pipeline), roots, debounce=0.2,
                                on_report=rounds.append)
        watcher.start()
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        try:
            for op in ops:
                known, before = stored_ids(store), embedder.embedded
                synced = len(rounds)
                apply_op(base, op, contents, serial)
                wait_until(lambda synced=synced: check_mirror(store, roots)
                           or _assert(len(rounds) > synced), f"the watcher to apply {op}")
                new = {point_id_for(sha) for sha in disk_state(roots).values()} - known
                assert embedder.embedded - before == len(new), op
        finally:
            watcher.stop()
            thread.join(timeout=60)
            watcher.close()


def _assert(condition: bool) -> None:
    assert condition


def test_a_vanished_file_is_still_found_shown_as_missing_and_counted(
    tmp_path: Path, settings: Settings, store: VectorStore, counting: Counting,
    contents: list[bytes],
) -> None:
    from PIL import Image

    from service.status import collection_status
    from ui.images import CollectionImages

    _, pipeline = counting
    root = tmp_path / "photos"
    for i in range(3):
        write(root / f"img{i}.jpg", contents[i])
    sync_roots(FolderIngester(store, pipeline), [root])
    (root / "img1.jpg").unlink()  # gone since the last sync
    gone = point_id_for(sha256_hex(contents[1]))
    hits = Searcher(store, pipeline).search_by_id(gone, k=3)
    assert hits[0].id == gone  # its vectors are still valid
    images = CollectionImages(store, settings)
    tile_file, caption = images.tile(gone, hits[0].payload, "img1.jpg")
    assert caption == "img1.jpg (file missing)"
    shown_file, shown_caption = images.tile(hits[1].id, hits[1].payload, "other")
    assert shown_caption == "other" and shown_file != tile_file
    with Image.open(tile_file) as tile, Image.open(shown_file) as shown:
        assert tile.size == (320, 320)
        assert tile.convert("RGB").getpixel((160, 160)) != shown.convert("RGB").getpixel(
            (shown.width // 2, shown.height // 2))
    assert images.preview(gone) == tile_file  # a query picked from the collection too
    files = collection_status(settings, store)["files"]
    assert files == {"locations": 3, "missing": 1, "roots": {str(root.resolve()): 3}}


# -- kill -9 during a sync ---------------------------------------------------------------


def located_state(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """Every point with its sorted places, and a check that each has its vectors."""
    from service.store.edge import EdgeStore

    with EdgeStore(settings) as store:
        store.ensure_collection()
        state = {}
        for page in store.scroll(with_vectors=["mobilenet"]):
            for record in page:
                assert record.vectors["mobilenet"].shape == (1280,)
                state[record.id] = sorted(loc.place for loc in locations_of(record.payload))
        return state


_SLOW_WRITES_CLI = """
import sys, time
from service.store.edge import EdgeStore
for name in ("_upsert_batch", "_set_payload", "_delete_points"):
    def slowed(self, *args, _write=getattr(EdgeStore, name), **kwargs):
        time.sleep(0.05)
        return _write(self, *args, **kwargs)
    setattr(EdgeStore, name, slowed)
from cli.main import app
app(sys.argv[1:])
"""


def copy_sparse(source: Path, target: Path) -> None:
    """Copy a data directory keeping the WAL's preallocated files sparse, so the WAL's
    growth on disk still shows when a sync starts writing."""
    subprocess.run(["cp", "-a", "--sparse=always", str(source), str(target)], check=True)


def slow_writes_cli(data_dir: Path, root: Path) -> list[str]:
    """``simimg-admin ingest ROOT`` on the real store, 50 ms before each write call.

    The sync's writes take milliseconds; slowed down, a kill lands among them too, not only
    before or after them.
    """
    return [sys.executable, "-c", _SLOW_WRITES_CLI, "--data-dir", str(data_dir),
            "ingest", str(root)]


def test_sync_killed_at_random_moments_reaches_the_uninterrupted_state(
    tmp_path: Path, session_models_dir: Path, contents: list[bytes],
) -> None:
    import random

    from PIL import Image

    from tests.processes import cli
    from tests.test_crash_safety import run_and_kill, timed_run

    rng = random.Random(int(os.environ.get("SIMIMG_CRASH_SEED", "0")))
    settings = make_settings(tmp_path / "data", session_models_dir)
    root = tmp_path / "library"
    for i in range(160):  # 10 contents, 16 places each
        write(root / f"album{i % 8}" / f"p{i}.jpg", contents[i % 10])
    assert timed_run(cli(settings.data_dir, "ingest", str(root))) > 0

    # A day of changes: moves and renames, deletions, copies, and edits to new contents.
    files = sorted(root.rglob("*.jpg"))
    for i, path in enumerate(files[:60]):
        target = root / f"moved{i % 3}" / f"m{i}.jpg"
        target.parent.mkdir(exist_ok=True)
        path.rename(target)
    for path in files[60:80]:
        path.unlink()
    for i, path in enumerate(files[80:100]):
        shutil.copyfile(path, root / f"copy{i}.jpg")
    for i, path in enumerate(files[100:112]):  # new contents: edited copies of the photos
        with Image.open(path) as image:
            image.rotate(90 * (1 + i % 3)).save(path, quality=60 + i)

    reference = make_settings(tmp_path / "reference", session_models_dir)
    shutil.rmtree(reference.data_dir)
    shutil.copytree(settings.data_dir, reference.data_dir, symlinks=True)
    startup_s = timed_run(cli(tmp_path / "startup", "ingest", str(tmp_path / "empty")),
                          mkdir=tmp_path / "empty")
    full_s = timed_run(slow_writes_cli(reference.data_dir, root))
    before = located_state(settings)
    expected = located_state(reference)
    assert len(expected) == 10 + 12  # the 10 photos are all still somewhere, +12 edits

    command = slow_writes_cli(settings.data_dir, root)
    kills = int(os.environ.get("SIMIMG_SYNC_KILLS", "4"))
    pristine = tmp_path / "pristine"
    copy_sparse(settings.data_dir, pristine)
    partial = 0
    for round_number in range(kills):
        # Each round starts from the unsynced collection: kill once, then sync to the end.
        shutil.rmtree(settings.data_dir)
        copy_sparse(pristine, settings.data_dir)
        if round_number % 2 == 0:  # once the sync starts writing (the WAL grows), + <= 0.4 s
            run_and_kill(command, settings, rng, 0, 2, "wal", settle=0.4)
        else:  # a random moment of the run, as timed on this machine
            delay = startup_s * 0.8 + rng.uniform(0.0, max(full_s - 0.8 * startup_s, 0.2))
            run_and_kill(command, settings, rng, 0, 1, "at", max_delay=delay)
        partial += located_state(settings) not in (before, expected)  # reopens whole
        assert timed_run(command) > 0
        assert located_state(settings) == expected
    print(f"\nsync kills: {kills}, left a partly synced collection: {partial}")
    assert partial > 0, "no kill landed while the sync was writing"


def test_cli_refuses_an_emptied_folder_in_one_line_and_reports_the_sync(
    tmp_path: Path, settings: Settings, contents: list[bytes],
) -> None:
    import json

    from tests.processes import run_admin

    root = tmp_path / "drive"
    write(root / "a.jpg", contents[0])
    write(root / "sub" / "b.jpg", contents[1])
    assert run_admin(settings, "ingest", str(root)).returncode == 0
    (root / "sub" / "b.jpg").rename(root / "b-renamed.jpg")
    moved = run_admin(settings, "ingest", str(root), "--json")
    assert moved.returncode == 0, moved.stderr
    summary = json.loads(moved.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["moved"], summary["unchanged"]) == (0, 1, 1)

    for path in root.rglob("*.jpg"):
        path.unlink()
    refused = run_admin(settings, "ingest", str(root))
    assert refused.returncode == 1
    message = refused.stderr.strip().splitlines()
    assert len(message) == 1 and "--allow-empty" in message[0] and str(root) in message[0]
    allowed = run_admin(settings, "ingest", str(root), "--allow-empty", "--json")
    assert allowed.returncode == 0, allowed.stderr
    summary = json.loads(allowed.stdout.strip().splitlines()[-1])
    assert (summary["removed"], summary["points_deleted"]) == (2, 2)
