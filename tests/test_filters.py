"""Filters by capture date, camera, label and folder: alone, combined with a similarity search
and a cluster, through the service, the CLI and the REST API; facet counts; labels that a
plain word finds. One small real library (20 ImageNet photos with EXIF written here, and
the cat and coffee photos of scikit-image) is built once for the module."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.runner import FolderIngester
from ingest.sync import sync_roots
from service.browse import browse, facet_counts
from service.config import Settings
from service.embedders.imagenet_labels import class_words
from service.embedders.mobilenet import load_mobilenet
from service.errors import ConfigError
from service.filters import SearchFilters
from service.pipeline import EmbeddingPipeline
from service.search import Searcher
from service.store import open_store
from service.store.base import PointFilter, PointRecord, VectorStore
from service.store.schema import PAYLOAD_CLUSTER, PAYLOAD_LABELS, PAYLOAD_PATH, PAYLOAD_TAKEN_AT
from tests.conftest import make_settings
from tests.processes import run_admin
from tests.test_photo_metadata import make_exif, save_with_exif
from tests.test_store_contract import Backend, make_points

DATES = ("2022:05:01 09:00:00", "2023:07:15 18:30:00", "2024:02:01 12:00:00", None)
CAMERAS = (("Canon", "Canon EOS 5D"), ("NIKON", "NIKON D3"), None)


@dataclass(frozen=True)
class Facts:
    """What the test wrote into one file, and where it put it."""

    taken: str | None  # RFC 3339 as stored
    camera: str | None
    folder: str  # relative folder
    cluster: int


@dataclass
class Library:
    settings: Settings
    root: Path
    facts: dict[str, Facts]  # relative path -> facts
    labels: dict[str, list[str]]  # relative path -> stored labels (read back once)
    open: Callable[[], VectorStore]


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, session_models_dir: Path, imagenet_dir: Path,
    photo_dir: Path,
) -> Library:
    tmp = tmp_path_factory.mktemp("filters")
    root = (tmp / "library").resolve()
    facts: dict[str, Facts] = {}
    for i, photo in enumerate(sorted(imagenet_dir.glob("*.jpg"))):
        folder = "trips/2023" if i < 8 else ("home" if i < 14 else "home/garden")
        date, camera = DATES[i % 4], CAMERAS[i % 3]
        exif = make_exif(date, make=camera[0] if camera else None,
                         model=camera[1] if camera else None)
        relative = f"{folder}/{photo.name}"
        save_with_exif(photo, root / relative, exif)
        taken = date.replace(":", "-", 2).replace(" ", "T") + "Z" if date else None
        facts[relative] = Facts(taken, camera[1] if camera else None, folder, i % 2)
    for name, folder in (("chelsea.png", "pets"), ("coffee.png", "home")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo_dir / name, root / folder / name)
        facts[f"{folder}/{name}"] = Facts(None, None, folder, 1)
    settings = make_settings(tmp / "data", session_models_dir)
    store = open_store(settings)
    try:
        pipeline = EmbeddingPipeline(settings, [load_mobilenet(settings)])
        report = sync_roots(FolderIngester(store, pipeline), [root])
        assert report.added == len(facts) and not report.failed
        labels = {}
        for page in store.scroll():
            for record in page:
                path = record.payload[PAYLOAD_PATH]
                store.set_payload({PAYLOAD_CLUSTER: facts[path].cluster}, [record.id])
                labels[path] = record.payload.get(PAYLOAD_LABELS, [])
        store.flush()
    finally:
        store.close()
    return Library(settings, root, facts, labels, lambda: open_store(settings))


@pytest.fixture
def store(library: Library) -> Iterator[VectorStore]:
    opened = library.open()
    yield opened
    opened.close()


# name -> (filters as a user types them, which images they must select)
CASES: dict[str, tuple[dict[str, str], Callable[[str, Facts, list[str]], bool]]] = {
    "after": ({"after": "2023-01-01"}, lambda p, f, words: bool(f.taken) and f.taken >= "2023"),
    "before": ({"before": "2023-07-15"},
               lambda p, f, words: bool(f.taken) and f.taken < "2023-07-15"),
    "between": ({"after": "2023", "before": "2024-02-01T12:00:01"},
                lambda p, f, words: bool(f.taken) and f.taken >= "2023"),
    "camera make": ({"camera": "canon"}, lambda p, f, words: f.camera == "Canon EOS 5D"),
    "camera model": ({"camera": "NIKON D3"}, lambda p, f, words: f.camera == "NIKON D3"),
    "label": ({"label": "Animal"}, lambda p, f, words: "animal" in words),
    "folder": ({"folder": "home"}, lambda p, f, words: f.folder.startswith("home")),
    "subfolder": ({"folder": "home/garden"}, lambda p, f, words: f.folder == "home/garden"),
    "all four": ({"after": "2022-06", "camera": "EOS", "label": "animal", "folder": "home"},
                 lambda p, f, words: bool(f.taken) and f.taken >= "2022-06"
                 and f.camera == "Canon EOS 5D" and "animal" in words
                 and f.folder.startswith("home")),
}


def expected(library: Library, case: str, cluster: int | None = None) -> set[str]:
    _, matches = CASES[case]
    return {p for p, f in library.facts.items()
            if matches(p, f, library.labels[p]) and cluster in (None, f.cluster)}


def parsed(library: Library, case: str) -> SearchFilters:
    given = dict(CASES[case][0])
    if "folder" in given:
        given["folder"] = str(library.root / given["folder"])
    return SearchFilters.parse(**given)


def paths(results: list[Any]) -> set[str]:
    return {r.path for r in results}


@pytest.mark.parametrize("case", list(CASES))
def test_each_filter_alone_and_with_a_cluster_selects_exactly_the_matching_images(
    library: Library, store: VectorStore, case: str
) -> None:
    filters = parsed(library, case)
    want = expected(library, case)
    assert want and want != set(library.facts)  # every case selects some, not all
    assert paths(browse(store, filters, limit=1000)) == want
    assert paths(browse(store, filters, cluster=1, limit=1000)) == expected(library, case, 1)


@pytest.mark.parametrize("case", ["after", "camera make", "label", "folder", "all four"])
def test_filters_combine_with_a_similarity_search_and_a_cluster(
    library: Library, store: VectorStore, photo_dir: Path, case: str
) -> None:
    searcher = Searcher(store, EmbeddingPipeline(library.settings,
                                                 [load_mobilenet(library.settings)]))
    query = searcher.prepare(photo_dir / "chelsea.png")
    filters = parsed(library, case)
    everything = searcher.search(query, k=100, filters=filters)
    assert paths(everything) == expected(library, case)
    scores = [r.score for r in everything]
    assert scores == sorted(scores, reverse=True)
    in_cluster = searcher.search(query, k=100, cluster=0, filters=filters)
    assert paths(in_cluster) == expected(library, case, 0)
    top = searcher.search(query, k=2, cluster=0, filters=filters)
    assert [r.id for r in top] == [r.id for r in in_cluster[:2]]


def _by_hand(store: VectorStore, value_of: Callable[[dict[str, Any]], list[Any]]) -> Counter:
    counts: Counter = Counter()
    for page in store.scroll():
        for record in page:
            counts.update(value_of(record.payload))
    return counts


@pytest.mark.parametrize("key", ["camera", "labels", "cluster", "year"])
def test_facet_counts_match_a_count_by_hand(store: VectorStore, key: str) -> None:
    value_of = {
        "camera": lambda p: [p["camera"]] if "camera" in p else [],
        "labels": lambda p: p.get("labels", []),
        "cluster": lambda p: [p["cluster"]],
        "year": lambda p: [int(p[PAYLOAD_TAKEN_AT][:4])] if PAYLOAD_TAKEN_AT in p else [],
    }[key]
    assert dict(facet_counts(store, key, limit=10_000)) == dict(_by_hand(store, value_of))
    counts = [count for _, count in facet_counts(store, key, limit=10_000)]
    assert counts == sorted(counts, reverse=True)
    top = facet_counts(store, key, limit=2)
    assert len(top) == 2 and [c for _, c in top] == counts[:2]


def test_facets_of_year_with_a_filter(library: Library, store: VectorStore) -> None:
    years = Counter(int(f.taken[:4]) for f in library.facts.values()
                    if f.taken and f.camera == "NIKON D3")
    assert dict(facet_counts(store, "year", SearchFilters.parse(camera="NIKON"))) == years
    with pytest.raises(ConfigError, match="KEY must be one of"):
        facet_counts(store, "colour")


def test_the_cat_photo_is_found_by_cat_and_by_animal(library: Library,
                                                     store: VectorStore) -> None:
    labels = library.labels["pets/chelsea.png"]
    assert {"cat", "animal"} <= set(labels)
    names = {w for words in class_words() for w in words[:1]}
    assert "animal" not in names  # no class is called that: only a hypernym gives it
    for word in ("cat", "animal", "CAT"):
        found = paths(browse(store, SearchFilters.parse(label=word), limit=1000))
        assert "pets/chelsea.png" in found
        assert "home/coffee.png" not in found
    assert "home/coffee.png" in paths(browse(store, SearchFilters.parse(label="coffee")))


def test_bad_filter_values_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match=r"--after: expected a date .* got '2024-13-01'"):
        SearchFilters.parse(after="2024-13-01")
    with pytest.raises(ConfigError, match="is not before"):
        SearchFilters.parse(after="2024", before="2023")
    assert SearchFilters.parse(after=" ", label="", camera=None) == SearchFilters()


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_both_backends_apply_the_new_conditions(tmp_path: Path, kind: str) -> None:
    backend = Backend(kind, tmp_path)
    try:
        store = backend.open()
        points = make_points(6)
        extra = [
            {"taken_at": "2021-01-01T10:00:00Z", "camera": "Canon EOS 5D", "labels": ["dog"],
             "folders": ["/a", "/a/b"]},
            {"taken_at": "2022-06-01T10:00:00+02:00", "camera": "NIKON D3",
             "labels": ["cat", "animal"], "folders": ["/a"]},
            {"camera": "Canon PowerShot", "labels": ["animal"], "folders": ["/c"]},
            {}, {}, {},
        ]
        store.upsert([PointRecord(p.id, p.vectors, {**p.payload, **e})
                      for p, e in zip(points, extra, strict=True)])
        counts = {
            "after": PointFilter(taken_after="2022-01-01T00:00:00Z"),
            "before": PointFilter(taken_before="2022-06-01T08:00:00Z"),
            "camera": PointFilter(camera="Canon"),
            "label": PointFilter(label="animal"),
            "folder": PointFilter(folder="/a"),
            "combined": PointFilter(camera="Canon", label="animal", cluster=2),
        }
        assert {name: store.count(where) for name, where in counts.items()} == {
            "after": 1, "before": 1, "camera": 2, "label": 2, "folder": 2, "combined": 1,
        }
        assert store.facet("labels") == [("animal", 2), ("cat", 1), ("dog", 1)]
    finally:
        backend.cleanup()


def test_cli_browse_and_facets(library: Library) -> None:
    done = run_admin(library.settings, "browse", "--label", "animal", "--after", "2023-01-01",
                     "--folder", str(library.root / "home"), "--json")
    assert done.returncode == 0, done.stderr
    found = {json.loads(line)["path"] for line in done.stdout.splitlines()}
    want = {p for p, f in library.facts.items() if f.taken and f.taken >= "2023"
            and f.folder.startswith("home") and "animal" in library.labels[p]}
    assert found == want
    done = run_admin(library.settings, "facets", "camera", "--json")
    assert done.returncode == 0, done.stderr
    counts = {c["value"]: c["count"] for c in json.loads(done.stdout)["counts"]}
    assert counts == dict(Counter(f.camera for f in library.facts.values() if f.camera))


def test_rest_api_filters(library: Library, photo_dir: Path) -> None:
    from api.app import create_app
    from api.service import SimimgService

    service = SimimgService(library.settings)
    try:
        client = TestClient(create_app(service, with_page=False))
        params = {"camera": "Canon", "folder": str(library.root / "trips")}
        want = {p for p, f in library.facts.items()
                if f.camera == "Canon EOS 5D" and f.folder.startswith("trips")}
        answer = client.get("/api/v1/browse", params=params)
        assert answer.status_code == 200, answer.text
        assert {r["path"] for r in answer.json()["results"]} == want
        data = (photo_dir / "chelsea.png").read_bytes()
        answer = client.post("/api/v1/search", files={"image": ("chelsea.png", data)},
                             data={"k": "50", "cluster": "0", **params})
        assert answer.status_code == 200, answer.text
        assert {r["path"] for r in answer.json()["results"]} == {
            p for p in want if library.facts[p].cluster == 0}
        facets = client.get("/api/v1/facets/year").json()
        assert {c["value"]: c["count"] for c in facets["counts"]} == dict(
            Counter(int(f.taken[:4]) for f in library.facts.values() if f.taken))
        bad = client.get("/api/v1/browse", params={"after": "soon"})
        assert bad.status_code == 400 and "--after" in bad.json()["message"]
    finally:
        service.close()
