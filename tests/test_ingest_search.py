"""End to end on real photos: ingest a folder, search it by image, survive restarts."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ingest.runner import FolderIngester
from service.config import Settings
from service.errors import EmptyCollectionError
from service.pipeline import EmbeddingPipeline
from service.search import Searcher
from service.store import open_store
from service.store.base import PointFilter, VectorStore
from service.store.schema import VECTOR_MOBILENET
from service.walker import iter_image_files
from tests.conftest import make_settings


def ingest(store: VectorStore, pipeline: EmbeddingPipeline, folder: Path):
    return FolderIngester(store, pipeline).ingest(folder, list(iter_image_files(folder)))


def test_collection_image_retrieves_itself_first(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path
) -> None:
    report = ingest(store, mobilenet_pipeline, imagenet_dir)
    assert report.added == 20 and not report.failed
    searcher = Searcher(store, mobilenet_pipeline)
    for image in sorted(imagenet_dir.glob("*.jpg")):
        results = searcher.search(image, k=6)
        assert len(results) == 6
        assert results[0].path == image.name
        assert results[0].score > 0.99
        assert results[0].file == image.resolve()
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def _distorted_copy(image: Path) -> bytes:
    """Crop 80%, resize to 60%, re-encode at JPEG quality 70: a typical edited copy."""
    with Image.open(image) as original:
        rgb = original.convert("RGB")
    width, height = rgb.size
    box = (int(width * 0.1), int(height * 0.08), int(width * 0.9), int(height * 0.88))
    edited = rgb.crop(box).resize((int(width * 0.6), int(height * 0.6)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    edited.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def test_edited_copy_from_outside_finds_its_original(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
    photo_dir: Path,
) -> None:
    ingest(store, mobilenet_pipeline, imagenet_dir)
    ingest(store, mobilenet_pipeline, photo_dir)  # distractors: real photos
    searcher = Searcher(store, mobilenet_pipeline)
    top1 = 0
    for image in sorted(imagenet_dir.glob("*.jpg")):
        results = searcher.search(_distorted_copy(image), k=3)
        paths = [r.path for r in results]
        assert image.name in paths, f"{image.name} not in top 3: {paths}"
        top1 += paths[0] == image.name
        assert results[0].score < 0.9999  # it really is a different file
    assert top1 >= 18


def test_reingest_adds_nothing_and_identical_files_are_stored_once(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "with-copies"
    shutil.copytree(imagenet_dir, folder)
    first = sorted(folder.glob("*.jpg"))[0]
    shutil.copyfile(first, folder / "copy-of-first.jpg")
    report = ingest(store, mobilenet_pipeline, folder)
    assert (report.added, report.duplicates) == (20, 1)
    assert store.count() == 20
    again = ingest(store, mobilenet_pipeline, folder)
    assert (again.added, again.already_stored) == (0, 21)
    assert store.count() == 20


@pytest.fixture
def open_backend(settings: Settings) -> Callable[[], VectorStore]:
    """Opens the store under test afresh (overridden by the server-backend suite)."""
    return lambda: open_store(settings)


def test_collection_survives_restart(
    open_backend: Callable[[], VectorStore], mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path,
) -> None:
    store = open_backend()
    ingest(store, mobilenet_pipeline, imagenet_dir)
    query = sorted(imagenet_dir.glob("*.jpg"))[3]
    before = Searcher(store, mobilenet_pipeline).search(query, k=5)
    store.close()
    reopened = open_backend()
    try:
        assert reopened.count() == 20
        after = Searcher(reopened, mobilenet_pipeline).search(query, k=5)
        assert [r.id for r in after] == [r.id for r in before]
        np.testing.assert_allclose([r.score for r in after], [r.score for r in before],
                                   atol=1e-5)
        assert after[0].payload == before[0].payload
    finally:
        reopened.close()


def test_payload_describes_the_file(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path
) -> None:
    ingest(store, mobilenet_pipeline, imagenet_dir)
    records = [r for page in store.scroll(with_vectors=[VECTOR_MOBILENET]) for r in page]
    assert len(records) == 20
    for record in records:
        payload = record.payload
        file = Path(payload["root"]) / payload["path"]
        assert file.is_file()
        assert payload["file_size"] == file.stat().st_size
        with Image.open(file) as image:
            assert (payload["width"], payload["height"]) == image.size
        assert payload["format"] == "JPEG"
        assert len(payload["sha256"]) == 64
        assert "cluster" not in payload
        assert record.vectors[VECTOR_MOBILENET].shape == (1280,)
        assert abs(float(np.linalg.norm(record.vectors[VECTOR_MOBILENET])) - 1) < 1e-4


def test_salted_folder_ingests_every_good_image_and_lists_each_bad_one(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "salted"
    shutil.copytree(imagenet_dir, folder / "good")
    good = sorted((folder / "good").glob("*.jpg"))
    bad = folder / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.png").write_text("this is not an image")
    (bad / "truncated.jpg").write_bytes(good[0].read_bytes()[:3000])
    header_only = good[1].read_bytes()
    (bad / "garbage-body.jpg").write_bytes(header_only[:200] + b"\x00" * 5000)
    (bad / "broken-link.jpg").symlink_to(tmp_path / "does-not-exist.jpg")
    report = ingest(store, mobilenet_pipeline, folder)
    assert report.added == 20
    assert store.count() == 20
    failed = dict(report.failed)
    assert set(failed) == {
        "bad/empty.jpg", "bad/notes.png", "bad/truncated.jpg", "bad/garbage-body.jpg",
        "bad/broken-link.jpg",
    }
    assert "empty" in failed["bad/empty.jpg"]
    assert "not a recognised image" in failed["bad/notes.png"]
    assert all(reason for reason in failed.values())


def test_cluster_filter_restricts_results(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path
) -> None:
    ingest(store, mobilenet_pipeline, imagenet_dir)
    ids = [r.id for page in store.scroll() for r in page]
    store.set_payload({"cluster": 7}, ids[:5])
    store.set_payload({"cluster": -1}, ids[5:])
    assert store.count(PointFilter(cluster=7)) == 5
    searcher = Searcher(store, mobilenet_pipeline)
    query = sorted(imagenet_dir.glob("*.jpg"))[0]
    results = searcher.search(query, k=10, cluster=7)
    assert len(results) == 5
    assert {r.id for r in results} == set(ids[:5])
    assert all(r.cluster == 7 for r in results)


def test_empty_collection_is_a_clear_error(
    store: VectorStore, mobilenet_pipeline: EmbeddingPipeline, imagenet_dir: Path
) -> None:
    with pytest.raises(EmptyCollectionError, match="ingest"):
        Searcher(store, mobilenet_pipeline).search(next(imagenet_dir.glob("*.jpg")))


def test_backends_agree_on_real_images(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, photo_dir: Path,
) -> None:
    """One real-image collection ranks and scores the same on Edge and qdrant-client."""
    from service.store.edge import EdgeStore
    from service.store.server import ServerStore

    # float32 on both sides: qdrant-client's local mode ignores the storage datatype.
    edge = EdgeStore(make_settings(tmp_path / "edge", session_models_dir,
                                   vector_datatype="float32"))
    client = ServerStore(make_settings(tmp_path / "client", session_models_dir),
                         location=tmp_path / "local-qdrant")
    try:
        for backend in (edge, client):
            backend.ensure_collection()
            ingest(backend, mobilenet_pipeline, imagenet_dir)
        queries = sorted(p for p in photo_dir.iterdir() if not p.name.startswith("."))
        assert len(queries) >= 4
        for query in queries:
            edge_hits = Searcher(edge, mobilenet_pipeline).search(query, k=8)
            client_hits = Searcher(client, mobilenet_pipeline).search(query, k=8)
            assert [h.id for h in edge_hits] == [h.id for h in client_hits]
            np.testing.assert_allclose(
                [h.score for h in edge_hits], [h.score for h in client_hits], atol=1e-4
            )
    finally:
        edge.close()
        client.close()


def test_float16_storage_keeps_rankings_of_real_images(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, photo_dir: Path,
) -> None:
    """The default float16 storage ranks real queries like float32 within fp16 precision."""
    from service.store.edge import EdgeStore

    half = EdgeStore(make_settings(tmp_path / "half", session_models_dir))
    full = EdgeStore(make_settings(tmp_path / "full", session_models_dir,
                                   vector_datatype="float32"))
    assert half.settings.vector_datatype == "float16"
    try:
        for backend in (half, full):
            backend.ensure_collection()
            ingest(backend, mobilenet_pipeline, imagenet_dir)
        queries = sorted(p for p in photo_dir.iterdir() if not p.name.startswith("."))
        for query in [*queries, *sorted(imagenet_dir.glob("*.jpg"))[:5]]:
            half_hits = Searcher(half, mobilenet_pipeline).search(query, k=5)
            full_hits = Searcher(full, mobilenet_pipeline).search(query, k=5)
            assert half_hits[0].id == full_hits[0].id
            np.testing.assert_allclose(
                [h.score for h in half_hits], [h.score for h in full_hits], atol=1e-3
            )
    finally:
        half.close()
        full.close()
