"""`simimg-admin serve` as the service, against a real process on a loopback port.

One collection (20 real ImageNet photos) is searched and described with the CLI first;
then one service runs on it with an API key and a small file/pixel limit, and every REST
endpoint, the page's API, the key, the upload limits, the allowed roots and the CLI as a
client are checked against it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from service.config import Settings
from service.walker import iter_image_files
from tests.conftest import make_settings
from tests.processes import ADMIN, admin_env, free_port, run_admin, start_serve, stop

KEY = "test-key-0123456789"
MAX_FILE_BYTES = 1_000_000
MAX_PIXELS = 400_000  # above every test photo (at most 427x640)
QUERIES = ["chelsea.png", "coffee.png", "rocket.jpg"]


@dataclass
class Service:
    settings: Settings
    env: dict[str, str]
    url: str
    http: httpx.Client
    server: subprocess.Popen
    photos: Path
    allowed: Path
    direct: dict[str, str]  # CLI stdout before the service ran, by command line
    copy: Path  # the data dir as it was before the service started


def _cli_lines(photo_dir: Path) -> dict[str, list[str]]:
    commands = {
        "status --json": ["status", "--json"],
        "status": ["status"],
    }
    commands["search --json"] = ["search", *(str(photo_dir / name) for name in QUERIES),
                                 "--k", "5", "--json"]
    commands["search table"] = ["search", str(photo_dir / "chelsea.png"), "--k", "4"]
    return commands


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, session_models_dir: Path, imagenet_dir: Path,
    photo_dir: Path,
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("service")
    settings = make_settings(tmp / "data", session_models_dir, max_file_bytes=MAX_FILE_BYTES,
                             max_pixels=MAX_PIXELS)
    env = {**admin_env(settings), "SIMIMG_MAX_PIXELS": str(MAX_PIXELS), "COLUMNS": "120"}
    allowed = tmp / "allowed"
    shutil.copytree(photo_dir, allowed / "photos")
    # the service's own settings: `status` shows them (the key masked)
    env.update(SIMIMG_API_KEY=KEY, SIMIMG_ALLOWED_ROOTS=str(allowed))
    done = subprocess.run([*ADMIN, "ingest", str(imagenet_dir), "--json"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    direct = {}
    for name, args in _cli_lines(photo_dir).items():
        answer = subprocess.run([*ADMIN, *args], env=env, capture_output=True, text=True,
                                check=False)
        assert answer.returncode == 0, answer.stderr
        direct[name] = answer.stdout
    copy = tmp / "data-copy"
    shutil.copytree(settings.data_dir, copy, symlinks=True)
    port = free_port()
    server = start_serve(env, port, api_key=KEY)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    try:
        yield Service(settings, env, url, http, server, photo_dir, allowed, direct, copy)
    finally:
        http.close()
        stop(server)


def _search(service: Service, name: str, **form: str) -> httpx.Response:
    data = (service.photos / name).read_bytes()
    return service.http.post("/api/v1/search", files={"image": (name, data)}, data=form)


# -- REST endpoints ----------------------------------------------------------------------


def test_search_matches_the_cli(service: Service) -> None:
    lines = service.direct["search --json"].splitlines()
    for name, line in zip(QUERIES, lines, strict=True):
        answer = _search(service, name, k="5")
        assert answer.status_code == 200, answer.text
        expected = json.loads(line)["results"]
        got = answer.json()["results"]
        assert [r["id"] for r in got] == [r["id"] for r in expected]
        assert [r["payload"] for r in got] == [r["payload"] for r in expected]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected],
                                                         abs=1e-5)


def test_search_parameters_and_min_score(service: Service) -> None:
    every = _search(service, "chelsea.png", k="10").json()["results"]
    threshold = every[3]["score"]
    kept = _search(service, "chelsea.png", k="10", min_score=str(threshold)).json()["results"]
    assert [r["id"] for r in kept] == [r["id"] for r in every[:4]]
    for space in ("autoencoder", "fused"):  # no autoencoder is trained
        untrained = _search(service, "coffee.png", space=space)
        assert untrained.status_code == 409 and untrained.json()["error"] == "model_not_trained"
    for bad in ({"k": "0"}, {"k": "many"}, {"space": "pixels"}, {"cluster": "x"}):
        answer = _search(service, "coffee.png", **bad)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["error"] == "bad_request"


def test_search_like_unlike_and_min_score(service: Service) -> None:
    plain = _search(service, "chelsea.png", k="10").json()["results"]
    liked, unliked = plain[4]["id"], plain[1]["id"]
    # liked alone, no upload: the liked image's own neighbours, itself left out
    only = service.http.post("/api/v1/search", data={"like": [liked], "k": "5"})
    assert only.status_code == 200, only.text
    own = service.http.get(f"/api/v1/points/{liked}/similar", params={"k": 6}).json()
    assert [r["id"] for r in only.json()["results"]] == [r["id"] for r in own["results"][1:]]
    steered = _search(service, "chelsea.png", k="10", like=liked, unlike=unliked).json()
    ids = [r["id"] for r in steered["results"]]
    assert len(ids) == 10 and liked not in ids and unliked not in ids
    assert ids != [r["id"] for r in plain if r["id"] not in (liked, unliked)][:10]
    query = plain[0]["id"]
    similar = service.http.get(f"/api/v1/points/{query}/similar",
                               params={"k": 10, "unlike": [unliked], "min_score": 0.5})
    assert similar.status_code == 200, similar.text
    scores = [r["score"] for r in similar.json()["results"]]
    assert scores and min(scores) >= 0.5 and unliked not in {
        r["id"] for r in similar.json()["results"]}
    unknown = "00000000-0000-0000-0000-000000000000"
    missing = _search(service, "chelsea.png", like=unknown)
    assert missing.status_code == 404 and missing.json() == {
        "error": "not_found", "message": f"--like: no image with id {unknown} in the collection"}
    nothing = service.http.post("/api/v1/search", data={"unlike": [liked]})
    assert nothing.status_code == 400 and "--like" in nothing.json()["message"]


def test_points_similar_and_thumbnails(service: Service, imagenet_dir: Path) -> None:
    first = _search(service, "chelsea.png", k="3").json()["results"][0]
    point = service.http.get(f"/api/v1/points/{first['id']}").json()
    assert point["payload"] == first["payload"] and point["vectors"] == ["mobilenet"]
    similar = service.http.get(f"/api/v1/points/{first['id']}/similar", params={"k": 3})
    assert similar.status_code == 200
    assert similar.json()["results"][0]["id"] == first["id"]
    assert similar.json()["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)

    thumb = service.http.get(f"/api/v1/points/{first['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert "immutable" in thumb.headers["cache-control"]
    image = Image.open(io.BytesIO(thumb.content))
    image.load()
    source = Image.open(imagenet_dir / first["path"])
    assert max(image.size) == 320 and abs(image.width / image.height
                                          - source.width / source.height) < 0.02
    again = service.http.get(f"/api/v1/points/{first['id']}/thumbnail",
                             headers={"If-None-Match": thumb.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    small = service.http.get(f"/api/v1/points/{first['id']}/thumbnail", params={"size": 128})
    assert max(Image.open(io.BytesIO(small.content)).size) == 128
    assert service.http.get(f"/api/v1/points/{first['id']}/thumbnail",
                            params={"size": 77}).status_code == 400

    unknown = "00000000-0000-0000-0000-000000000000"
    for path in (f"/api/v1/points/{unknown}", f"/api/v1/points/{unknown}/thumbnail",
                 f"/api/v1/points/{unknown}/similar", "/api/v1/points/not-an-id/thumbnail",
                 "/api/v1/jobs/nope", "/api/v1/no-such-endpoint"):
        answer = service.http.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"] == "not_found"


def test_status_and_clusters(service: Service) -> None:
    assert service.http.get("/api/v1/status").json() == json.loads(
        service.direct["status --json"]
    )
    clusters = service.http.get("/api/v1/clusters").json()
    assert clusters == {"run": None, "clusters": []}


def test_uploads_that_are_not_images_or_too_large(service: Service, tmp_path: Path) -> None:
    text = service.http.post("/api/v1/search", files={"image": ("notes.txt", b"hello")})
    assert text.status_code == 415 and "notes.txt" in text.json()["message"]
    big_pixels = tmp_path / "big.png"
    Image.new("RGB", (1000, 1000), (10, 20, 30)).save(big_pixels)  # small file, 1 Mpx
    answer = service.http.post("/api/v1/search",
                               files={"image": ("big.png", big_pixels.read_bytes())})
    assert answer.status_code == 413 and "SIMIMG_MAX_PIXELS" in answer.json()["message"]
    just_over = service.http.post("/api/v1/search",
                                  files={"image": ("x.jpg", b"\xff" * (MAX_FILE_BYTES + 1))})
    assert just_over.status_code == 413 and "limit" in just_over.json()["message"]
    far_over = service.http.post("/api/v1/search",
                                 files={"image": ("x.jpg", b"\xff" * (3 * MAX_FILE_BYTES))})
    assert far_over.status_code == 413
    missing = service.http.post("/api/v1/search", data={"k": "3"})
    assert missing.status_code == 400 and "image" in missing.json()["message"]


def test_api_key_is_required_everywhere(service: Service) -> None:
    bare = httpx.Client(base_url=service.url, timeout=30)
    wrong = httpx.Client(base_url=service.url, timeout=30,
                         headers={"Authorization": "Bearer not-the-key"})
    for client, message in ((bare, "missing"), (wrong, "wrong")):
        for method, path in (("GET", "/api/v1/status"), ("GET", "/api/v1/openapi.json"),
                             ("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs"),
                             ("GET", "/"), ("GET", "/gradio_api/info"),
                             ("GET", "/config")):
            answer = client.request(method, path)
            assert answer.status_code == 401, (method, path)
            assert message in answer.json()["message"]
    assert bare.get("/", params={"api_key": "guess"}).status_code == 401
    # a browser opens the page once with ?api_key=: the key moves into an HttpOnly cookie
    browser = httpx.Client(base_url=service.url, timeout=30)
    opened = browser.get("/", params={"api_key": KEY})
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    assert "HttpOnly" in opened.headers["set-cookie"]
    page = browser.get("/")  # the cookie jar sends the key now
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert browser.get("/api/v1/health").status_code == 200


def test_refuses_non_loopback_without_key(service: Service) -> None:
    refused = run_admin(service.settings, "serve", "--host", "0.0.0.0",
                        "--port", str(free_port()), timeout=120)
    assert refused.returncode == 1
    assert "SIMIMG_API_KEY" in refused.stderr and "0.0.0.0" in refused.stderr


def test_openapi_schema_validates(service: Service) -> None:
    from openapi_spec_validator import validate

    schema = service.http.get("/api/v1/openapi.json").json()
    validate(schema)
    paths = set(schema["paths"])
    assert {"/api/v1/search", "/api/v1/points/{point_id}", "/api/v1/points/{point_id}/similar",
            "/api/v1/points/{point_id}/thumbnail", "/api/v1/status", "/api/v1/jobs",
            "/api/v1/jobs/{job_id}"} <= paths
    form = schema["paths"]["/api/v1/search"]["post"]["requestBody"]["content"]
    fields = next(iter(form.values()))["schema"]
    if "$ref" in fields:
        fields = schema["components"]["schemas"][fields["$ref"].rsplit("/", 1)[1]]
    assert {"like", "unlike", "min_score", "image"} <= set(fields["properties"])
    assert "image" not in fields.get("required", [])
    similar = schema["paths"]["/api/v1/points/{point_id}/similar"]["get"]["parameters"]
    assert {"like", "unlike", "min_score"} <= {p["name"] for p in similar}
    assert service.http.get("/api/v1/docs").status_code == 200


# -- the CLI as a client ------------------------------------------------------------------


def test_cli_sends_its_work_to_the_service(service: Service, photo_dir: Path) -> None:
    note = f"done by the running service at {service.url}"
    lines = _cli_lines(photo_dir)
    for name in ("status --json", "status", "search table", "search --json"):
        answer = subprocess.run([*ADMIN, *lines[name]], env=service.env,
                                capture_output=True, text=True, check=False)
        assert answer.returncode == 0, answer.stderr
        assert note in answer.stderr
        if name.startswith("search "):
            _same_search(answer.stdout, service.direct[name])
        else:
            assert answer.stdout == service.direct[name]
    first = json.loads(service.direct["search --json"].splitlines()[0])["results"]
    liked = subprocess.run([*ADMIN, "search", "--like", first[2]["id"], "--k", "3", "--json"],
                           env=service.env, capture_output=True, text=True, check=False)
    assert liked.returncode == 0 and note in liked.stderr, liked.stderr
    rest = service.http.post("/api/v1/search", data={"like": [first[2]["id"]], "k": "3"})
    assert [r["id"] for r in json.loads(liked.stdout)["results"]] == [
        r["id"] for r in rest.json()["results"]]
    failed = subprocess.run([*ADMIN, "search", "/etc/hostname"], env=service.env,
                            capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        "error: /etc/hostname: not a recognised image file"
    )


def _same_search(got: str, expected: str) -> None:
    if not got.lstrip().startswith("{"):
        assert got == expected
        return
    assert len(got.splitlines()) == len(expected.splitlines()) == len(QUERIES)
    for got_line, expected_line in zip(got.splitlines(), expected.splitlines(), strict=True):
        a, b = json.loads(got_line), json.loads(expected_line)
        assert a["query"] == b["query"]
        assert [r["id"] for r in a["results"]] == [r["id"] for r in b["results"]]
        assert [r["score"] for r in a["results"]] == pytest.approx(
            [r["score"] for r in b["results"]], abs=1e-5)


def test_cli_ingest_through_the_service_matches_a_direct_run(
    service: Service, tmp_path: Path, imagenet_dir: Path
) -> None:
    folder = tmp_path / "more"
    shutil.copytree(imagenet_dir, folder / "a")
    for name in QUERIES:
        shutil.copy(service.photos / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    direct_env = {**service.env, "SIMIMG_DATA_DIR": str(service.copy)}
    direct = subprocess.run([*ADMIN, "ingest", str(folder), "--json"], env=direct_env,
                            capture_output=True, text=True, check=False)
    via = subprocess.run([*ADMIN, "ingest", str(folder), "--json"], env=service.env,
                         capture_output=True, text=True, check=False)
    assert direct.returncode == via.returncode == 0, (direct.stderr, via.stderr)
    assert "done by the running service" in via.stderr
    expected, got = json.loads(direct.stdout), json.loads(via.stdout)
    for report in (expected, got):
        report.pop("seconds"), report.pop("images_per_second")
    assert got == expected  # the same collection before: the same report
    assert got["added"] == len(QUERIES) and "broken.jpg" in [f["path"] for f in got["failed"]]


# -- jobs --------------------------------------------------------------------------------


def _wait(service: Service, job_id: str) -> dict:
    import time

    for _ in range(1200):
        job = service.http.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_ingest_job_allowed_roots_and_conflicts(service: Service) -> None:
    for folder in ("/etc", str(service.allowed.parent)):
        refused = service.http.post("/api/v1/jobs", json={"kind": "ingest", "folder": folder})
        assert refused.status_code == 403, refused.text
        assert "allowed roots" in refused.json()["message"]
    for body in ({"kind": "ingest", "folder": "relative/dir"}, {"kind": "dance"},
                 {"kind": "ingest", "folder": str(service.allowed / "missing")},
                 {"kind": "cluster", "eps": "wide"}, {"kind": "train", "epochs": 0},
                 {"kind": "ingest", "folder": str(service.allowed), "colour": "red"}):
        answer = service.http.post("/api/v1/jobs", json=body)
        assert answer.status_code == 400, (body, answer.text)
    queued = service.http.post("/api/v1/jobs",
                               json={"kind": "ingest", "folder": str(service.allowed / "photos")})
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    job = _wait(service, queued.json()["id"])
    assert job["state"] == "done", job
    photos = len(list(iter_image_files(service.allowed / "photos")))
    assert job["result"]["found"] == photos and job["progress"]["done"] == photos
    failed = job["result"]["failed"]  # the largest photos are over SIMIMG_MAX_PIXELS
    assert failed and all("SIMIMG_MAX_PIXELS" in item["reason"] for item in failed)
    counted = ("added", "already_stored", "duplicates")  # the CLI test stored 3 of them
    assert sum(job["result"][key] for key in counted) + len(failed) == photos
    listed = service.http.get("/api/v1/jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]
    again = service.http.delete(f"/api/v1/jobs/{job['id']}")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    # a cluster job, then the clusters endpoint shows its run
    clustered = service.http.post("/api/v1/jobs", json={"kind": "cluster", "min_samples": 2})
    finished = _wait(service, clustered.json()["id"])
    assert finished["state"] == "done", finished
    clusters = service.http.get("/api/v1/clusters").json()
    assert clusters["run"]["run_id"] == finished["result"]["run_id"]
    assert sum(c["size"] for c in clusters["clusters"]) == finished["result"]["points"]


def test_cli_cluster_and_clusters_then_a_train_job(service: Service) -> None:
    note = f"done by the running service at {service.url}"
    clustered = subprocess.run([*ADMIN, "cluster", "--min-samples", "2", "--json"],
                               env=service.env, capture_output=True, text=True, check=False)
    assert clustered.returncode == 0, clustered.stderr
    assert note in clustered.stderr and "eps = " in clustered.stderr
    run = json.loads(clustered.stdout)
    listed = subprocess.run([*ADMIN, "clusters", "--json", "--examples", "1"], env=service.env,
                            capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sum(item["size"] for item in lines) == run["points"]
    api = service.http.get("/api/v1/clusters", params={"examples": 1}).json()
    assert api["run"]["run_id"] == run["run_id"] and api["clusters"] == lines
    bad = subprocess.run([*ADMIN, "cluster", "--eps", "often"], env=service.env,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "--eps" in bad.stderr

    job = service.http.post("/api/v1/jobs", json={"kind": "train", "epochs": 1,
                                                  "image_size": 32, "batch_size": 16})
    assert job.status_code == 202, job.text
    trained = _wait(service, job.json()["id"])
    assert trained["state"] == "done", trained
    assert trained["result"]["reembed"]["embedded"] == run["points"]
    assert any("epoch" in line for line in trained["messages"])
    found = _search(service, "coffee.png", k="5", space="autoencoder")
    assert found.status_code == 200 and len(found.json()["results"]) == 5


# -- load: page and REST at once ----------------------------------------------------------


def test_concurrent_page_and_rest_clients_never_fail(service: Service) -> None:
    """8 clients of the page's API and 8 of the REST API search at once, each fetching
    every result image; no request may fail and no image may be truncated."""
    from benchmarks.service_load import run_load

    report = run_load(service.url, [service.photos / q for q in QUERIES], page_clients=8,
                      rest_clients=8, searches=3, api_key=KEY)
    print(f"\nservice load (20 points): {json.dumps(report)}")
    assert report["failures"] == [], report["failures"][:3]
    assert report["page"]["requests"] >= 8 * 3 and report["rest"]["requests"] >= 8 * 3 * 7


def test_page_serves_the_thumbnail_cache_files(service: Service) -> None:
    from gradio_client import Client, handle_file

    client = Client(service.url + "/", headers={"Authorization": f"Bearer {KEY}"},
                    verbose=False)
    gallery, _, rows = client.predict(handle_file(str(service.photos / "chelsea.png")),
                                         "mobilenet", 4, "all", api_name="/search")
    rest = _search(service, "chelsea.png", k="4").json()["results"]
    assert [row["id"] for row in rows] == [r["id"] for r in rest]
    for tile, result in zip(gallery, rest, strict=True):
        assert Path(tile["image"]).name == f"{result['id']}.jpg"
        api_copy = service.http.get(f"/api/v1/points/{result['id']}/thumbnail").content
        assert Path(tile["image"]).read_bytes() == api_copy
    # the page names the cache file itself (never a copy) and lets the browser keep it
    cached = (service.settings.data_dir / "cache" / "thumbnails" / "320" / rest[0]["id"][:2]
              / f"{rest[0]['id']}.jpg")
    served = service.http.get(f"/gradio_api/file={cached}")
    assert served.status_code == 200 and served.content == cached.read_bytes()
    assert "immutable" in served.headers["cache-control"] and served.headers["etag"]



def test_optimize_through_the_service_and_exact_search(service: Service) -> None:
    done = subprocess.run([*ADMIN, "optimize", "--json"], env=service.env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"done by the running service at {service.url}" in done.stderr
    report = json.loads(done.stdout)
    assert report["vectors"] > 0 and 0 <= report["indexed_vectors"] <= report["vectors"]
    plain = _search(service, "chelsea.png", k="6").json()["results"]
    exact = _search(service, "chelsea.png", k="6", exact="true").json()["results"]
    assert [r["id"] for r in exact] == [r["id"] for r in plain]
