"""Concurrent use: queries during an ingest, and two CLI processes on one data directory.

* In one process, threads search one :class:`EdgeStore` through :class:`Searcher` while a
  :class:`FolderIngester` fills it: no query errors, every result list is well formed, and
  an image whose point exists when the query starts comes back first.
* Two ``simimg-admin`` processes on one embedded data directory: the second exits 1 with the
  one-line in-use message, the first is not disturbed and finishes with its data intact.

Counts go to ``SIMIMG_RELIABILITY_STATS`` when set. ``SIMIMG_CONCURRENCY_IMAGES`` sizes the
ingested folder (default 120).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.datasets import camera_roll_jpegs
from ingest.runner import FolderIngester
from service.config import Settings
from service.images import sha256_hex
from service.pipeline import EmbeddingPipeline
from service.search import Searcher
from service.store.edge import EdgeStore
from service.store.schema import point_id_for
from service.walker import iter_image_files
from tests.conftest import make_settings, report_case_counts
from tests.processes import REPO, cli, cli_env

IMAGES = int(os.environ.get("SIMIMG_CONCURRENCY_IMAGES", "120"))
STATS: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    yield
    report_case_counts("concurrency", STATS)


@pytest.fixture(scope="module")
def roll(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("concurrency-roll")
    camera_roll_jpegs(folder, IMAGES, side=256, seed=7)
    return folder


def test_queries_during_ingest_never_fail_and_stay_consistent(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, roll: Path,
) -> None:
    store = EdgeStore(make_settings(tmp_path / "data", session_models_dir))
    store.ensure_collection()
    try:
        FolderIngester(store, mobilenet_pipeline).ingest(
            imagenet_dir, list(iter_image_files(imagenet_dir))
        )  # so the collection is never empty while queries run
        searcher = Searcher(store, mobilenet_pipeline)
        anchors = sorted(imagenet_dir.glob("*.jpg"))
        roll_files = sorted(roll.glob("*.jpg"))
        prepared = {p: searcher.prepare(p) for p in anchors + roll_files[::4]}
        errors: list[BaseException] = []
        counts = {"queries": 0, "own_first": 0}
        done = threading.Event()

        def query_loop(offset: int) -> None:
            queries = list(prepared)
            index = offset
            while not done.is_set() or index < offset + len(queries):
                query = queries[index % len(queries)]
                index += 1
                try:
                    own = prepared[query].point_id
                    present = bool(store.existing_ids([own]))
                    results = searcher.search(prepared[query], k=5)
                    scores = [r.score for r in results]
                    assert 1 <= len(results) <= 5
                    assert scores == sorted(scores, reverse=True)
                    assert len({r.id for r in results}) == len(results)
                    for r in results:
                        assert r.id == point_id_for(r.payload["sha256"])
                        assert r.path and r.root
                    if present:
                        assert results[0].id == own, f"{query.name}: own point not first"
                        assert results[0].score > 0.999
                        counts["own_first"] += 1
                    if query in anchors:
                        assert results[0].id == own
                    counts["queries"] += 1
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=query_loop, args=(i * 7,)) for i in range(2)]
        for thread in threads:
            thread.start()
        try:
            report = FolderIngester(store, mobilenet_pipeline).ingest(
                roll, list(iter_image_files(roll))
            )
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert not errors, errors[0]
        assert report.added == IMAGES and not report.failed
        assert store.count() == IMAGES + len(anchors)
        assert counts["own_first"] > 0
        STATS["inprocess_queries"] = STATS.get("inprocess_queries", 0) + counts["queries"]
        STATS["inprocess_images_ingested"] = IMAGES
    finally:
        store.close()


# ----------------------------------------------------------------- two processes


def holds_store(pid: int, settings: Settings) -> bool:
    """True once process ``pid`` has the store's write-ahead log open (and locked)."""
    wal = str(settings.data_dir.resolve() / "qdrant-edge" / settings.collection / "wal")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(wal):
                return True
        except OSError:
            continue
    return False


def catches_sigterm(pid: int) -> bool:
    """True once process ``pid`` has a Python handler installed for SIGTERM."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.parametrize(
    "second", [["status"], ["ingest", "{folder}"], ["search", "{query}"]],
    ids=["status", "ingest", "search"],
)
def test_second_cli_process_gets_the_in_use_message(
    tmp_path: Path, session_models_dir: Path, imagenet_dir: Path, second: list[str]
) -> None:
    settings = make_settings(tmp_path / "data", session_models_dir)
    query = sorted(imagenet_dir.glob("*.jpg"))[0]
    first = subprocess.Popen(
        cli(settings.data_dir, "ingest", str(imagenet_dir), "--watch", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO,
    )
    stderr_lines: list[str] = []
    watching = threading.Event()

    def read_stderr() -> None:
        assert first.stderr is not None
        for line in first.stderr:
            stderr_lines.append(line)
            if line.startswith("watching "):
                watching.set()
        watching.set()  # the process ended: stop waiting

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        # Wait (by state, not by a timed assertion) until the first process holds the store.
        while not holds_store(first.pid, settings):
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.02)
        args = [a.format(folder=imagenet_dir, query=query) for a in second]
        other = subprocess.run(cli(settings.data_dir, *args), capture_output=True, text=True,
                               env=cli_env(), cwd=REPO, timeout=300)
        assert other.returncode == 1
        lines = [line for line in other.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, other.stderr
        assert lines[0].startswith("error: ") and "in use by another simimg process" in lines[0]
        assert other.stdout == ""
        STATS["second_process_refusals"] = STATS.get("second_process_refusals", 0) + 1
    finally:
        # SIGTERM only once the CLI handles it: during the initial scan it has no handler.
        watching.wait(timeout=600)
        while first.poll() is None and not catches_sigterm(first.pid):
            time.sleep(0.02)
        first.send_signal(signal.SIGTERM)  # --watch: finish the batch in progress, exit
        first.wait(timeout=300)
        reader.join(timeout=60)
    assert first.stdout is not None
    out = first.stdout.read()
    assert first.returncode == 0, "".join(stderr_lines)
    report = json.loads(out.strip().splitlines()[0])
    assert report["found"] == 20 and not report["failed"]
    with EdgeStore(settings) as store:
        ids = store.existing_ids([point_id_for(sha256_hex(p.read_bytes()))
                                  for p in imagenet_dir.glob("*.jpg")])
        assert len(ids) == 20 and store.count() == 20


@pytest.mark.skipif(not os.environ.get("QDRANT_URL"),
                    reason="needs a Qdrant server: set QDRANT_URL (docs/deployment.md)")
def test_queries_from_this_process_while_another_process_ingests_on_a_server(
    tmp_path: Path, session_models_dir: Path, mobilenet_pipeline: EmbeddingPipeline,
    imagenet_dir: Path, roll: Path,
) -> None:
    """Server backend: `simimg-admin ingest` runs as its own process while this one queries
    the same collection; every query succeeds and each stored anchor comes back first."""
    from service.store.server import ServerStore

    collection = f"simimg-concurrency-{uuid.uuid4().hex[:10]}"
    settings = make_settings(tmp_path / "data", session_models_dir, collection=collection,
                             qdrant_url=os.environ["QDRANT_URL"],
                             qdrant_api_key=os.environ.get("QDRANT_API_KEY"))
    store = ServerStore(settings)
    store.ensure_collection()
    try:
        FolderIngester(store, mobilenet_pipeline).ingest(
            imagenet_dir, list(iter_image_files(imagenet_dir))
        )
        searcher = Searcher(store, mobilenet_pipeline)
        anchors = {p: searcher.prepare(p) for p in sorted(imagenet_dir.glob("*.jpg"))}
        env = {**cli_env(), "QDRANT_URL": settings.qdrant_url or "",
               "SIMIMG_COLLECTION": collection}
        if settings.qdrant_api_key:
            env["QDRANT_API_KEY"] = settings.qdrant_api_key
        ingest = subprocess.Popen(cli(settings.data_dir, "ingest", str(roll), "--json"),
                                  env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        queries = 0
        while ingest.poll() is None or queries < len(anchors):
            for prepared in anchors.values():
                results = searcher.search(prepared, k=5)
                assert results[0].id == prepared.point_id and results[0].score > 0.999
                queries += 1
        out, err_text = ingest.communicate(timeout=600)
        assert ingest.returncode == 0, err_text[-2000:]
        assert json.loads(out.strip().splitlines()[-1])["added"] == IMAGES
        assert store.count() == IMAGES + len(anchors)
        STATS["server_cross_process_queries"] = queries
    finally:
        store.client.delete_collection(collection)
        store.close()
