"""Background jobs of a real `simimg-admin serve`: searches answered while an ingest job
runs, cancel, kill -9 during an ingest job then restart and re-run (every image stored
exactly once), and `serve --watch`."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.datasets import fashion_mnist_labelled
from service.walker import iter_image_files
from tests.processes import admin_env, free_port, run_admin, server_log, start_serve, stop

FASHION_IMAGES = 800


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fashion")
    fashion_mnist_labelled(dest / "fashion", FASHION_IMAGES, split="test")
    return dest / "fashion"


def _unique_images(folder: Path) -> int:
    return len({hashlib.sha256(path.read_bytes()).hexdigest()
                for path in iter_image_files(folder)})


def _job(http: httpx.Client, job_id: str) -> dict:
    return http.get(f"/api/v1/jobs/{job_id}").json()


def _wait(http: httpx.Client, job_id: str, until: tuple[str, ...] = ("done", "failed",
          "cancelled", "interrupted"), timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(http, job_id)
        if job["state"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {until}: {job}")


def _points(http: httpx.Client) -> int:
    return http.get("/api/v1/status").json()["points"]


@pytest.fixture
def collection(settings, imagenet_dir: Path, fashion_dir: Path) -> dict[str, str]:
    done = run_admin(settings, "ingest", str(imagenet_dir), "--json")
    assert done.returncode == 0, done.stderr
    return {**admin_env(settings), "SIMIMG_ALLOWED_ROOTS": str(fashion_dir.parent)}


def test_searches_are_answered_during_an_ingest_job_and_cancel_stops_it(
    collection: dict[str, str], fashion_dir: Path, photo_dir: Path
) -> None:
    port = free_port()
    server = start_serve(collection, port)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        body = {"kind": "ingest", "folder": str(fashion_dir)}
        job = http.post("/api/v1/jobs", json=body).json()
        job = _wait(http, job["id"], until=("running",))
        duplicate = http.post("/api/v1/jobs", json=body)
        assert duplicate.status_code == 409 and job["id"] in duplicate.json()["message"]

        answered_while_running = 0
        query = (photo_dir / "chelsea.png").read_bytes()
        for _ in range(40):
            answer = http.post("/api/v1/search", files={"image": ("chelsea.png", query)},
                               data={"k": "5"})
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["results"]) == 5
            state = _job(http, job["id"])
            if state["state"] != "running":
                break
            answered_while_running += 1
            if answered_while_running >= 5 and state["progress"]["done"] > 0:
                break
        assert answered_while_running >= 5, "the ingest job ended before 5 searches"

        cancel = http.delete(f"/api/v1/jobs/{job['id']}")
        assert cancel.status_code == 200
        stopped = _wait(http, job["id"])
        assert stopped["state"] == "cancelled"
        assert 0 < stopped["progress"]["done"] < stopped["progress"]["total"] == FASHION_IMAGES
        partial = _points(http)
        assert 20 <= partial < 20 + _unique_images(fashion_dir)

        again = http.post("/api/v1/jobs", json=body).json()
        finished = _wait(http, again["id"])
        assert finished["state"] == "done", finished
        assert finished["result"]["already_stored"] >= partial - 20
        assert _points(http) == 20 + _unique_images(fashion_dir)
    finally:
        http.close()
        stop(server)


def test_kill_during_an_ingest_job_then_restart_and_rerun_stores_each_image_once(
    collection: dict[str, str], fashion_dir: Path, imagenet_dir: Path, tmp_path: Path,
    settings,
) -> None:
    port = free_port()
    server = start_serve(collection, port)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=120)
    body = {"kind": "ingest", "folder": str(fashion_dir)}
    try:
        job = http.post("/api/v1/jobs", json=body).json()
        deadline = time.monotonic() + 300
        while _job(http, job["id"])["progress"]["done"] < 100:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        stop(server)

    watched = tmp_path / "watched"
    shutil.copytree(imagenet_dir, watched)  # already stored: the watch scan adds nothing
    server = start_serve(collection, port, "--watch", str(watched))
    try:
        interrupted = _job(http, job["id"])
        assert interrupted["state"] == "interrupted"
        assert "run it again" in interrupted["error"]
        again = http.post("/api/v1/jobs", json=body).json()
        finished = _wait(http, again["id"])
        assert finished["state"] == "done", finished
        # what the killed job had written survived (only batches in flight are redone)
        assert finished["result"]["already_stored"] > 0
        unique = _unique_images(fashion_dir)
        assert _points(http) == 20 + unique

        # serve --watch: the folder was scanned by a job, and a new file is ingested
        scans = [j for j in http.get("/api/v1/jobs").json()["jobs"]
                 if str(watched.resolve()) in j["params"].get("folders", [])]
        assert scans and _wait(http, scans[0]["id"])["state"] == "done"
        shutil.copy(_new_image(tmp_path), watched / "new.png")
        deadline = time.monotonic() + 60
        while _points(http) < 21 + unique:
            assert time.monotonic() < deadline, server_log(server)
            time.sleep(0.5)
    finally:
        http.close()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0
        stop(server)
    # stopped cleanly: the CLI opens the collection directly again and sees every image
    status = run_admin(settings, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["points"] == 21 + unique


def _new_image(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "new-source.png"
    image = Image.new("RGB", (96, 64))
    image.putdata([(x * 2, y * 3, (x + y) % 256) for y in range(64) for x in range(96)])
    image.save(path)
    return path
