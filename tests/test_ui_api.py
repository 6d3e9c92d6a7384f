"""The web page's API: same results as the CLI, and nothing but collection images served.

One collection (20 real ImageNet photos, labelled into clusters 0 and 1 plus noise, placed
on the map by ``build_map``) is
searched first with ``simimg-admin search --json`` in a subprocess, then served in-process
with Gradio and queried with ``gradio_client``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

import ui  # noqa: F401  (disables Gradio analytics before gradio is imported)
from ingest.runner import FolderIngester
from service.config import Settings
from service.embedders.mobilenet import load_mobilenet
from service.map_layout import build_map
from service.pipeline import EmbeddingPipeline, build_pipeline
from service.search import Searcher
from service.store import open_store
from service.store.base import VectorStore
from service.walker import iter_image_files
from tests.conftest import STORED_VECTOR_ATOL, make_settings
from tests.processes import free_port, run_admin

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

MAX_FILE_BYTES = 1_000_000  # above every test photo; the oversized upload is bigger
# Cluster labels set through the store, by sorted file name: 8 + 7 + 5 noise.
LABELS = [0] * 8 + [1] * 7 + [-1] * 5
CLI_QUERIES = [
    # (query name, space, cluster)
    ("imagenet_00_243.jpg", "mobilenet", None),
    ("chelsea.png", "mobilenet", None),
    ("coffee.png", "fused", None),
    ("imagenet_07_609.jpg", "autoencoder", None),
    ("rocket.jpg", "fused", 1),
    ("imagenet_03_990.jpg", "mobilenet", 0),
    ("astronaut.png", "mobilenet", -1),
]


@dataclass
class Served:
    """A running page on a labelled collection, with the CLI's answers computed before."""

    settings: Settings
    url: str
    client: Client
    files: dict[str, Path]
    cli: dict[tuple[str, str, int | None], list[dict]]
    labels: dict[str, int]  # file name -> cluster


def _cli_results(settings: Settings, files: dict[str, Path]) -> dict:
    answers = {}
    for name, space, cluster in CLI_QUERIES:
        args = ["search", str(files[name]), "--k", "6", "--space", space, "--json"]
        if cluster is not None:
            args += ["--cluster", str(cluster)]
        done = run_admin(settings, *args)
        assert done.returncode == 0, done.stderr
        answers[name, space, cluster] = json.loads(done.stdout)["results"]
    return answers


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, session_models_dir: Path, imagenet_dir: Path,
    photo_dir: Path,
) -> Iterator[Served]:
    from ui.app import build_app, launch

    data = tmp_path_factory.mktemp("ui") / "data"
    settings = make_settings(data, session_models_dir, max_file_bytes=MAX_FILE_BYTES)
    pipeline = EmbeddingPipeline(settings, [load_mobilenet(settings)])
    images = sorted(imagenet_dir.glob("*.jpg"))
    store = open_store(settings)
    try:
        FolderIngester(store, pipeline).ingest(imagenet_dir, list(iter_image_files(imagenet_dir)))
        by_path = {r.payload["path"]: r.id for page in store.scroll() for r in page}
        for image, label in zip(images, LABELS, strict=True):
            store.set_payload({"cluster": label}, [by_path[image.name]])
        build_map(store)  # the Map tab's positions (PCA: 20 images)
    finally:
        store.close()
    # A small real autoencoder (2 epochs on the 20 photos, ~20 s) for its space and fused.
    trained = run_admin(settings, "train", "--epochs", "2", "--image-size", "32",
                        "--batch-size", "8")
    assert trained.returncode == 0, trained.stderr
    files = {p.name: p for p in [*images, *iter_image_files(photo_dir)]}
    cli = _cli_results(settings, files)

    store = open_store(settings)
    demo = build_app(Searcher(store, build_pipeline(settings)), settings)
    port = free_port()
    try:
        launch(demo, settings, port=port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}/"
        labels = {image.name: label for image, label in zip(images, LABELS, strict=True)}
        yield Served(settings, url, Client(url, verbose=False), files, cli, labels)
    finally:
        demo.close()
        store.close()


def search(served: Served, query: Path, space: str = "mobilenet", k: int = 6,
           cluster: str = "all") -> tuple[list[dict], list[dict]]:
    """(gallery items, result rows) from the page's ``/search`` endpoint."""
    gallery, _reconstruction, rows = served.client.predict(
        handle_file(str(query)), space, k, cluster, api_name="/search"
    )
    return gallery, rows


@pytest.mark.parametrize(("name", "space", "cluster"), CLI_QUERIES)
def test_api_returns_the_same_results_as_the_cli(
    served: Served, name: str, space: str, cluster: int | None
) -> None:
    gallery, rows = search(served, served.files[name], space, 6,
                           "all" if cluster is None else str(cluster))
    expected = served.cli[name, space, cluster]
    assert len(rows) == len(expected) > 0
    assert [r["id"] for r in rows] == [e["id"] for e in expected]
    assert [r["image_path"] for r in rows] == [e["path"] for e in expected]
    assert [r["cluster"] for r in rows] == [e["cluster"] for e in expected]
    assert [r["score"] for r in rows] == pytest.approx([e["score"] for e in expected], abs=1e-6)
    assert len(gallery) == len(rows)
    for item, row in zip(gallery, rows, strict=True):
        assert item["caption"].startswith(f"{row['score']:.4f} · {row['image_path']}")
        assert Path(item["image"]).stat().st_size > 0


def test_cluster_filter_returns_only_that_cluster(served: Served) -> None:
    query = served.files["imagenet_00_243.jpg"]
    for label in (0, 1, -1):
        _, rows = search(served, query, k=10, cluster=str(label))
        members = sum(1 for value in served.labels.values() if value == label)
        assert len(rows) == members
        assert {r["cluster"] for r in rows} == {label}


def test_page_filters_narrow_the_search(served: Served) -> None:
    query = handle_file(str(served.files["imagenet_00_243.jpg"]))
    # after, before, camera, label, folder: as the Filters panel passes them
    _, _, rows = served.client.predict(query, "mobilenet", 20, "all", 0, "", "", "", "dog", "",
                                       api_name="/search")
    assert 0 < len(rows) < 20  # the bull mastiff and some of the other dogs, nothing else
    _, _, rows = served.client.predict(query, "mobilenet", 20, "all", 0, "2000", "", "", "", "",
                                       api_name="/search")
    assert rows == []  # these photos carry no capture time: no date range holds them
    with pytest.raises(Exception, match="--after: expected a date"):
        served.client.predict(query, "mobilenet", 6, "all", 0, "yesterday", "", "", "", "",
                              api_name="/search")


def test_search_by_stored_id_finds_itself_first(served: Served) -> None:
    _, rows = search(served, served.files["imagenet_05_853.jpg"])
    query, gallery, _reconstruction, by_id = served.client.predict(
        rows[0]["id"], "mobilenet", 6, "all", api_name="/search_by_id"
    )
    assert by_id[0]["id"] == rows[0]["id"]
    assert by_id[0]["score"] == pytest.approx(1.0, abs=STORED_VECTOR_ATOL)
    assert len(gallery) == 6 and Path(query).is_file()


def test_thumbs_steer_a_fused_search_and_min_score_cuts_it(served: Served) -> None:
    client = Client(served.url, verbose=False)  # its own session: its own like/unlike lists
    query = handle_file(str(served.files["imagenet_05_853.jpg"]))
    _, _, rows = client.predict(query, "fused", 6, "all", api_name="/search")
    liked, unliked = rows[1]["id"], rows[2]["id"]
    client.predict(liked, api_name="/like")
    client.predict(unliked, api_name="/unlike")
    _, _, steered = client.predict(query, "fused", 6, "all", 0, api_name="/search_again")
    assert len(steered) == 6 and steered[0]["id"] == rows[0]["id"]
    assert not {liked, unliked} & {r["id"] for r in steered}
    # fused: each space's ranking is cut at the cosine floor before fusion; the query's own
    # image (cosine 1 in both spaces) stays, the others fall below 0.99
    _, _, cut = client.predict(query, "fused", 6, "all", 0.99, api_name="/search_again")
    assert [r["id"] for r in cut] == [rows[0]["id"]]


def test_non_image_upload_is_refused_and_the_app_keeps_working(
    served: Served, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("this is not an image")
    with pytest.raises(Exception, match="not a recognised image"):
        search(served, notes)
    gallery, rows = search(served, served.files["chelsea.png"])
    assert len(rows) == 6 == len(gallery)


def test_oversized_upload_is_refused(served: Served, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(served.files["chelsea.png"].read_bytes() + b"\0" * MAX_FILE_BYTES)
    with pytest.raises(Exception, match=r"(?i)exceeds|too large|maximum|limit"):
        search(served, big)
    assert len(search(served, served.files["coffee.png"])[1]) == 6


def test_autoencoder_space_shows_the_reconstruction(served: Served) -> None:
    query = served.files["chelsea.png"]
    _gallery, reconstruction, rows = served.client.predict(
        handle_file(str(query)), "autoencoder", 6, "all", api_name="/search"
    )
    assert len(rows) == 6
    assert reconstruction["visible"] is True  # gradio_client hands over the component update
    with Image.open(reconstruction["value"]) as image:
        assert image.width > 0 and image.height > 0
    _gallery, reconstruction, _rows = served.client.predict(
        handle_file(str(query)), "mobilenet", 6, "all", api_name="/search"
    )
    assert reconstruction["visible"] is False and reconstruction["value"] is None


def test_untrained_autoencoder_is_a_one_line_error(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, settings: Settings,
    photo_dir: Path,
) -> None:
    import gradio as gr

    from ui.app import SearchPage

    page = SearchPage(Searcher(store, mobilenet_pipeline), settings)
    with pytest.raises(gr.Error, match="no autoencoder model is trained"):
        page.search_upload(str(photo_dir / "chelsea.png"), "autoencoder", 6, "all")


def _call(served: Served, endpoint: str, data: list) -> str:
    """Raw Gradio API call (what a hostile client can send): the event stream's text."""
    with httpx.Client(base_url=served.url, timeout=60) as http:
        started = http.post(f"gradio_api/call/{endpoint}", json={"data": data})
        if started.status_code != 200:
            return f"HTTP {started.status_code}: {started.text}"
        event_id = started.json()["event_id"]
        return http.get(f"gradio_api/call/{endpoint}/{event_id}").text


@pytest.mark.parametrize("path", [
    "/etc/passwd",
    "../../../../../../etc/passwd",
    "imagenet_00_243.jpg",
])
def test_a_request_cannot_name_a_file_to_read(served: Served, path: str) -> None:
    collection_file = str(served.files["imagenet_00_243.jpg"])
    for target in (path, collection_file):
        payload = {"path": target, "meta": {"_type": "gradio.FileData"}}
        answer = _call(served, "search", [payload, "mobilenet", 6, "all"])
        assert "event: complete" not in answer, answer
        assert "error" in answer.lower()


@pytest.mark.parametrize("path", [
    "/etc/passwd",
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "imagenet_00_243.jpg",
])
def test_file_route_serves_no_local_files(served: Served, path: str) -> None:
    targets = [path, str(served.files["imagenet_00_243.jpg"])]
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for target in targets:
            response = http.get(f"gradio_api/file={target}")
            assert response.status_code in (403, 404), (target, response.status_code)
            assert b"root:" not in response.content


def test_clusters_and_status_endpoints(served: Served) -> None:
    clusters = served.client.predict(api_name="/clusters")
    assert "| 0 | 8 |" in clusters and "| 1 | 7 |" in clusters and "| noise | 5 |" in clusters
    grid = served.client.predict("1", api_name="/cluster_members")
    names = sorted(item["caption"] for item in grid)
    assert names == sorted(n for n, label in served.labels.items() if label == 1)
    status = served.client.predict(api_name="/status")
    assert "**images**: 20" in status
    assert "**mobilenet vectors filled**: 20" in status
    assert "**autoencoder model**: ae-" in status
    assert "**autoencoder vectors filled**: 20" in status


@pytest.mark.skipif(bool(os.environ.get("QDRANT_URL")), reason="embedded store only")
def test_other_commands_say_the_directory_is_in_use(served: Served) -> None:
    done = run_admin(served.settings, "status")
    assert done.returncode == 1
    assert "in use" in done.stderr and "serve" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("payload", [
    {"root": "/data/photos", "path": "../../etc/passwd"},
    {"root": "/data/photos", "path": "/etc/passwd"},
    {"root": "relative/root", "path": "a.jpg"},
    {"root": "/data/photos"},
])
def test_stored_paths_cannot_leave_their_root(payload: dict) -> None:
    from service.errors import ImageDecodeError
    from service.locations import stored_file

    with pytest.raises(ImageDecodeError):
        stored_file(payload)
    assert stored_file({"root": "/data/photos", "path": "a/../b.jpg"}) == Path(
        "/data/photos/b.jpg"
    )
