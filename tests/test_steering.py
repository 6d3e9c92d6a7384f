"""Steering on real images, on both backends: --like pulls a class up, --unlike pushes one
down, --min-score cuts the list, and every bad id is a one-line error.

The collection: 60 Fashion-MNIST product photos (10 classes, the Debian package), embedded
with the real MobileNet; the class is the folder name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.datasets import FASHION_MNIST_ROOT, fashion_mnist_labelled
from ingest.runner import FolderIngester
from service.errors import ConfigError, PointNotFoundError
from service.pipeline import EmbeddingPipeline
from service.search import Searcher, SearchResult
from service.store import open_store
from service.store.base import VectorStore
from service.walker import iter_image_files
from tests.conftest import make_settings
from tests.processes import run_admin

K = 10
MISSING_ID = "00000000-0000-0000-0000-000000000001"

pytestmark = pytest.mark.skipif(not FASHION_MNIST_ROOT.is_dir(),
                                reason="apt-get install dataset-fashion-mnist")


@dataclass
class Steered:
    searcher: Searcher
    store: VectorStore
    ids: dict[str, list[str]]  # class -> point ids, by file name
    classes: dict[str, str]  # point id -> class


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fashion")
    fashion_mnist_labelled(dest, 60, seed=3, workers=1)
    return dest


@pytest.fixture(scope="module", params=["edge", "local"])
def steered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline, fashion_dir: Path,
) -> Iterator[Steered]:
    from service.store.edge import EdgeStore
    from service.store.server import ServerStore

    tmp = tmp_path_factory.mktemp(f"steer-{request.param}")
    settings = make_settings(tmp / "data", session_models_dir)
    store = (EdgeStore(settings) if request.param == "edge"
             else ServerStore(settings, location=tmp / "qdrant-local"))
    try:
        store.ensure_collection()
        FolderIngester(store, mobilenet_pipeline).ingest(
            fashion_dir, list(iter_image_files(fashion_dir)))
        by_path = {r.payload["path"]: r.id for page in store.scroll() for r in page}
        ids: dict[str, list[str]] = {}
        for path in sorted(by_path):
            ids.setdefault(path.split("/")[0], []).append(by_path[path])
        classes = {pid: name for name, members in ids.items() for pid in members}
        yield Steered(Searcher(store, mobilenet_pipeline), store, ids, classes)
    finally:
        store.close()


def count(results: list[SearchResult], name: str, steered: Steered) -> int:
    return sum(steered.classes[r.id] == name for r in results)


def test_liking_images_of_a_class_pulls_that_class_up(steered: Steered) -> None:
    query = steered.ids["trouser"][0]
    plain = steered.searcher.search_by_id(query, k=K)
    liked = steered.ids["bag"][:2]
    more = steered.searcher.search_by_id(query, k=K, like=liked)
    assert count(more, "bag", steered) >= count(plain, "bag", steered) + 2
    assert not {r.id for r in more} & set(liked)  # the examples themselves are left out
    assert more[0].id == query and more[0].score > 0.99
    scores = [r.score for r in more]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0
    # liked images alone, without a query image: every other image of their class is found
    sandals = steered.ids["sandal"]
    only = steered.searcher.search(None, k=K, like=sandals[:2])
    assert {r.id for r in only} >= set(sandals[2:]) and len(sandals) >= 4
    assert steered.classes[only[0].id] == "sandal" and only[0].score > 0.8


def test_unliking_an_image_pushes_its_class_down(steered: Steered) -> None:
    query = steered.ids["pullover"][0]
    plain = steered.searcher.search_by_id(query, k=K)
    coats = [r.id for r in plain if steered.classes[r.id] == "coat"]
    assert len(coats) >= 2
    less = steered.searcher.search_by_id(query, k=K, unlike=coats[:1])
    assert count(less, "coat", steered) < count(plain, "coat", steered)
    assert coats[0] not in {r.id for r in less}
    for coat in coats[1:]:  # every other coat ranks lower than before, or drops out
        before = [r.id for r in plain].index(coat)
        after = [r.id for r in less].index(coat) if coat in {r.id for r in less} else K
        assert after > before
    # like sandals, unlike a sneaker: fewer sneakers than liking sandals alone
    sandals, sneaker = steered.ids["sandal"][:2], steered.ids["sneaker"][:1]
    liked = steered.searcher.search(None, k=K, like=sandals)
    steer = steered.searcher.search(None, k=K, like=sandals, unlike=sneaker)
    assert count(steer, "sneaker", steered) < count(liked, "sneaker", steered)


def test_min_score_cuts_the_results(steered: Steered) -> None:
    query = steered.ids["bag"][0]
    every = steered.searcher.search_by_id(query, k=K)
    floor = (every[3].score + every[4].score) / 2
    kept = steered.searcher.search_by_id(query, k=K, min_score=floor)
    assert [r.id for r in kept] == [r.id for r in every[:4]]
    assert steered.searcher.search_by_id(query, k=K, min_score=1.01) == []
    liked = steered.ids["bag"][1:3]
    steer = steered.searcher.search_by_id(query, k=K, like=liked)
    cut = steered.searcher.search_by_id(query, k=K, like=liked, min_score=steer[5].score)
    assert [r.id for r in cut] == [r.id for r in steer if r.score >= steer[5].score]
    assert 6 <= len(cut) < K


def test_bad_steering_arguments_are_one_line_errors(steered: Steered) -> None:
    search = steered.searcher.search
    some = steered.ids["bag"][0]
    with pytest.raises(PointNotFoundError, match=f"^--like: no image with id {MISSING_ID} "):
        search(None, like=[some, MISSING_ID])
    with pytest.raises(PointNotFoundError, match=r"^--unlike: no image with id not-an-id "):
        steered.searcher.search_by_id(some, unlike=["not-an-id"])
    with pytest.raises(ConfigError, match="both --like and --unlike"):
        search(None, like=[some], unlike=[some])
    with pytest.raises(ConfigError, match="query image or at least one --like"):
        search(None, unlike=[some])
    with pytest.raises(ConfigError, match="--min-score must be a number"):
        search(None, like=[some], min_score=math.nan)


def test_cli_like_unlike_and_min_score(
    tmp_path: Path, session_models_dir: Path, fashion_dir: Path
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir)
    done = run_admin(settings, "ingest", str(fashion_dir / "sandal"), str(fashion_dir / "bag"))
    assert done.returncode == 0, done.stderr
    store = open_store(settings)
    try:
        by_class = {Path(r.payload["root"]).name: r.id for page in store.scroll() for r in page}
    finally:
        store.close()
    liked = run_admin(settings, "search", "--like", by_class["bag"], "--min-score", "0.5",
                      "--k", "3", "--json")
    assert liked.returncode == 0, liked.stderr
    answer = json.loads(liked.stdout)
    assert answer["query"] is None and 1 <= len(answer["results"]) <= 3
    assert all(r["score"] >= 0.5 and r["id"] != by_class["bag"] for r in answer["results"])
    missing = run_admin(settings, "search", "--like", by_class["bag"], "--unlike", MISSING_ID)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: --unlike: no image with id {MISSING_ID} in the collection")
