"""Duplicates: exact copies, edited copies of real photos, reference mode, dismissals, moves.

Real photos (foolbox ImageNet, scikit-image) and their edited copies from the benchmark's
own edit functions, ingested by the real library sync into a real embedded store, scanned
by the real batched Qdrant queries; the CLI runs as a separate process like a user's.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.duplicates import EDITS, photo_sources, write_family
from ingest.runner import FolderIngester
from ingest.sync import sync_roots
from service.config import Settings
from service.duplicates import DEFAULT_THRESHOLDS, DuplicateGroup, find_duplicates
from service.duplicates.dismissals import dismiss
from service.duplicates.groups import complete_linkage
from service.locations import locations_of
from service.pipeline import EmbeddingPipeline
from service.store import open_store
from service.store.base import PointFilter, VectorStore
from service.store.schema import PAYLOAD_DUPLICATE_GROUP, SCHEMA_VERSION
from tests.processes import run_admin

FAMILIES = ("imagenet_00_243", "imagenet_05_853", "chelsea", "coffee")


@pytest.fixture(scope="module")
def photos() -> dict:
    return photo_sources()


@pytest.fixture(scope="module")
def families(photos: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real photos, each with one copy per edit type: ``<photo>/<edit>.jpg``."""
    dest = tmp_path_factory.mktemp("families")
    for name in FAMILIES:
        write_family(dest, name, photos[name], list(EDITS))
    return dest


@pytest.fixture
def library(settings: Settings) -> Iterator[VectorStore]:
    store = open_store(settings)
    yield store
    store.close()


def ingest(store: VectorStore, pipeline: EmbeddingPipeline, *roots: Path) -> None:
    report = sync_roots(FolderIngester(store, pipeline), list(roots))
    assert not report.failed


def places(group: DuplicateGroup) -> set[str]:
    return {f"{Path(item.root).name}/{item.path}" for item in group.items}


def test_exact_copies_are_one_group_with_one_keeper(
    settings: Settings, library: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, tmp_path: Path,
) -> None:
    root = tmp_path / "lib"
    photos = sorted(imagenet_dir.glob("*.jpg"))[:3]
    for sub in ("a", "b/c"):
        (root / sub).mkdir(parents=True)
        shutil.copyfile(photos[0], root / sub / "same.jpg")
    shutil.copyfile(photos[1], root / "other.jpg")
    ingest(library, mobilenet_pipeline, root)
    scan = find_duplicates(settings, library)
    assert [g.kind for g in scan.groups] == ["exact"]
    group = scan.groups[0]
    assert {i.path for i in group.items} == {"a/same.jpg", "b/c/same.jpg"}
    assert [i.keep for i in group.items].count(True) == 1
    assert all(i.score == 1.0 and i.width > 0 and i.file_size > 0 for i in group.items)
    # labelled in the payload, through an index users can filter on
    assert library.count(PointFilter(in_duplicate_group=True)) == 1
    assert PAYLOAD_DUPLICATE_GROUP in library._indexed_keys()  # type: ignore[attr-defined]
    assert library.schema_version() == SCHEMA_VERSION >= 3  # duplicate_group came in 3


def test_every_edit_type_is_found_at_the_default_threshold(
    settings: Settings, library: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    families: Path,
) -> None:
    ingest(library, mobilenet_pipeline, families)
    scan = find_duplicates(settings, library)
    assert scan.threshold == DEFAULT_THRESHOLDS["mobilenet"]
    found_per_edit = dict.fromkeys(EDITS, 0)
    for family in FAMILIES:
        group = next((g for g in scan.groups if f"{family}/original.jpg" in
                      {i.path for i in g.items}), None)
        found = {i.path for i in group.items} if group else set()
        assert all(path.split("/")[0] == family for path in found), found  # no mixing
        for edit in EDITS:
            found_per_edit[edit] += f"{family}/{edit}.jpg" in found
    # Every edit type is found in every photo, except greyscale, whose measured recall at
    # this threshold is 0.78 (docs/benchmarks-duplicates.md): 3 of these 4 photos.
    assert found_per_edit.pop("greyscale") >= 3
    assert found_per_edit == dict.fromkeys(found_per_edit, 4)
    # the keeper has the largest resolution: never the half-size or cropped copy
    for group in scan.groups:
        keeper = group.keeper
        assert keeper.width * keeper.height == max(i.width * i.height for i in group.items)


def test_distinct_photos_are_not_grouped(
    settings: Settings, library: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, photo_dir: Path,
) -> None:
    """20 ImageNet photos (two of them different jeeps) and the scikit-image photos.

    The only group is scikit-image's stereo pair: two shots of one scene from a few
    centimetres apart, the near-duplicate a burst of photos makes."""
    ingest(library, mobilenet_pipeline, imagenet_dir, photo_dir)
    assert library.count() >= 29
    groups = find_duplicates(settings, library).groups
    assert [sorted(i.path for i in g.items) for g in groups] == [
        ["motorcycle_left.png", "motorcycle_right.png"]]


def test_reference_mode_reports_only_new_images_duplicating_the_archive(
    settings: Settings, library: VectorStore, mobilenet_pipeline: EmbeddingPipeline,
    families: Path, imagenet_dir: Path, tmp_path: Path,
) -> None:
    archive, new = tmp_path / "archive", tmp_path / "new"
    photos = sorted(imagenet_dir.glob("*.jpg"))
    (archive / "x").mkdir(parents=True)
    new.mkdir()
    shutil.copyfile(families / "chelsea/original.jpg", archive / "chelsea.jpg")
    shutil.copyfile(families / "coffee/original.jpg", archive / "x/coffee.jpg")
    shutil.copyfile(photos[10], archive / "only_in_archive.jpg")
    shutil.copyfile(families / "chelsea/flip.jpg", new / "cat_flipped.jpg")
    shutil.copyfile(families / "coffee/original.jpg", new / "coffee_copy.jpg")  # exact
    shutil.copyfile(photos[11], new / "new_photo.jpg")
    shutil.copyfile(photos[11], new / "new_photo_again.jpg")  # a copy inside B only
    ingest(library, mobilenet_pipeline, archive, new)
    scan = find_duplicates(settings, library, against=(archive, new))
    by_keeper = {g.keeper.path: g for g in scan.groups}
    assert set(by_keeper) == {"chelsea.jpg", "x/coffee.jpg"}
    assert places(by_keeper["chelsea.jpg"]) == {"archive/chelsea.jpg", "new/cat_flipped.jpg"}
    assert by_keeper["chelsea.jpg"].kind == "near"
    assert places(by_keeper["x/coffee.jpg"]) == {"archive/x/coffee.jpg", "new/coffee_copy.jpg"}
    assert by_keeper["x/coffee.jpg"].kind == "exact"
    for group in scan.groups:  # every extra lies under B, every keeper under A
        assert Path(group.keeper.root) == archive.resolve()
        assert all(Path(i.root) == new.resolve() for i in group.extras)
    # a full scan labels; a reference scan leaves the labels alone
    assert library.count(PointFilter(in_duplicate_group=True)) == 0
    with pytest.raises(Exception, match="no images stored under"):
        find_duplicates(settings, library, against=(archive, tmp_path / "elsewhere"))


def test_dismissals_survive_a_rescan_a_threshold_change_and_a_restart(
    settings: Settings, mobilenet_pipeline: EmbeddingPipeline, families: Path, tmp_path: Path,
) -> None:
    root = tmp_path / "lib"
    for family in ("chelsea", "coffee"):
        shutil.copytree(families / family, root / family)
    store = open_store(settings)
    ingest(store, mobilenet_pipeline, root)
    first = find_duplicates(settings, store)
    assert len(first.groups) == 2
    cat = next(g for g in first.groups if g.keeper.path.startswith("chelsea/"))
    dismiss(settings, cat)
    again = find_duplicates(settings, store)
    assert [g.keeper.path.split("/")[0] for g in again.groups] == ["coffee"]
    lower = find_duplicates(settings, store, threshold=0.7)
    assert not any(i.path.startswith("chelsea/") for g in lower.groups for i in g.items)
    # the cat photos' labels from the first scan are removed
    assert store.count(PointFilter(in_duplicate_group=True)) == len(again.groups[0].ids)
    store.close()
    # a restart and a re-scan after a rename (content ids follow the files)
    (root / "chelsea" / "flip.jpg").rename(root / "chelsea" / "mirrored.jpg")
    store = open_store(settings)
    ingest(store, mobilenet_pipeline, root)
    restarted = find_duplicates(settings, store)
    store.close()
    assert [g.keeper.path.split("/")[0] for g in restarted.groups] == ["coffee"]


def test_cli_json_csv_and_dismiss_by_number(
    settings: Settings, families: Path, tmp_path: Path
) -> None:
    root = tmp_path / "lib"
    shutil.copytree(families / "coffee", root / "coffee")
    shutil.copyfile(families / "coffee/original.jpg", root / "coffee_copy.jpg")
    assert run_admin(settings, "ingest", str(root)).returncode == 0
    csv_out = run_admin(settings, "duplicates", "--csv", "--threshold", "0.9")
    assert csv_out.returncode == 0, csv_out.stderr
    assert csv_out.stdout.splitlines()[0].startswith("group,key,kind,id,root,path,score,keep")
    assert len(csv_out.stdout.splitlines()) > 2
    # --dismiss N names group N of the last scan: the one printed next
    done = run_admin(settings, "duplicates", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["group"], line["kind"]) for line in lines] == [(1, "near")]
    items = lines[0]["items"]
    assert {"id", "root", "path", "score", "keep"} <= items[0].keys()
    assert len(items) == 10 and sum(i["keep"] for i in items) == 1  # 9 files + 1 exact copy
    assert run_admin(settings, "duplicates", "--dismiss", "1").returncode == 0
    after = run_admin(settings, "duplicates", "--json")
    assert after.returncode == 0 and after.stdout == "", after.stdout
    bad = run_admin(settings, "duplicates", "--dismiss", "99")
    assert bad.returncode == 1 and "no group '99'" in bad.stderr


def test_move_extras_dry_run_changes_nothing_and_yes_moves_and_syncs(
    settings: Settings, families: Path, tmp_path: Path
) -> None:
    root, dest = tmp_path / "lib", tmp_path / "extras"
    shutil.copytree(families / "chelsea", root / "chelsea")
    shutil.copyfile(families / "chelsea/original.jpg", root / "copy_of_cat.jpg")
    assert run_admin(settings, "ingest", str(root)).returncode == 0
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))

    dry = run_admin(settings, "duplicates", "--move-extras-to", str(dest))
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 9 files would be moved" in dry.stderr
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg")) == before
    assert not dest.exists()

    inside = run_admin(settings, "duplicates", "--move-extras-to", str(root / "x"), "--yes")
    assert inside.returncode == 1 and "inside the ingested folder" in inside.stderr

    moved = run_admin(settings, "duplicates", "--move-extras-to", str(dest), "--yes")
    assert moved.returncode == 0, moved.stderr
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
    assert len(left) == 1  # the keeper (largest resolution) stays
    moved_files = sorted(p.relative_to(dest / "lib").as_posix() for p in dest.rglob("*.jpg"))
    assert sorted(left + moved_files) == before  # nothing deleted, paths kept
    store = open_store(settings)
    try:
        stored = [loc.path for page in store.scroll() for r in page
                  for loc in locations_of(r.payload)]
        assert stored == left  # the collection followed the moves
    finally:
        store.close()
    assert run_admin(settings, "duplicates", "--json").stdout == ""


def test_complete_linkage_does_not_chain_weakly_similar_images() -> None:
    """a~b, b~c, c~d but a, c and b, d not similar: two groups, never one chain."""
    edges = {("a", "b"): 0.95, ("b", "c"): 0.90, ("c", "d"): 0.93}
    assert sorted(complete_linkage(edges)) == [["a", "b"], ["c", "d"]]
    edges[("a", "c")] = 0.85
    edges[("b", "d")] = 0.86
    edges[("a", "d")] = 0.84
    assert complete_linkage(edges) == [["a", "b", "c", "d"]]


def test_a_move_never_replaces_a_file_and_taken_names_get_a_number(tmp_path: Path) -> None:
    from service.atomic import move_file
    from service.duplicates.groups import DuplicateItem
    from service.duplicates.moves import plan_moves

    source, target = tmp_path / "a.jpg", tmp_path / "out" / "a.jpg"
    source.write_bytes(b"mine")
    target.parent.mkdir()
    target.write_bytes(b"already there")
    with pytest.raises(FileExistsError):
        move_file(source, target)
    assert source.read_bytes() == b"mine" and target.read_bytes() == b"already there"

    roots = [tmp_path / "one" / "photos", tmp_path / "two" / "photos"]
    items = [DuplicateItem("k", str(roots[0]), "x.jpg", 1.0, True, 9, 9, 9)]
    items += [DuplicateItem(str(n), str(root), "x.jpg", 0.9, False, 1, 1, 1)
              for n, root in enumerate(roots)]
    dest = tmp_path / "extras"
    (dest / "photos").mkdir(parents=True)
    (dest / "photos" / "x.jpg").write_bytes(b"taken")
    planned = plan_moves([DuplicateGroup("near", items)], dest, [])
    assert [m.target.name for m in planned] == ["x (2).jpg", "x (3).jpg"]
