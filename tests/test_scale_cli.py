"""`ingest` builds the vector index once enough vectors wait; `search --exact` checks it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from service.config import Settings
from service.store import open_store
from tests.processes import ADMIN, REPO, admin_env


def _admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*ADMIN, *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done


def test_ingest_builds_the_index_and_exact_search_agrees(
    settings: Settings, imagenet_dir: Path, photo_dir: Path
) -> None:
    # a tiny full-scan threshold, so 20 images are worth an index
    env = admin_env(settings) | {"SIMIMG_HNSW_FULL_SCAN_KB": "10", "SIMIMG_INDEX_AFTER": "10"}
    ingest = _admin(env, "ingest", str(imagenet_dir), "--json")
    assert "building the vector index: 20 vectors not yet indexed" in ingest.stderr
    store = open_store(settings)
    try:
        assert store.indexed_vectors() == 20
    finally:
        store.close()
    queries = [str(sorted(imagenet_dir.glob("*.jpg"))[3]), str(photo_dir / "chelsea.png")]
    indexed = _admin(env, "search", *queries, "--k", "8", "--json").stdout.splitlines()
    exact = _admin(env, "search", *queries, "--k", "8", "--json", "--exact").stdout.splitlines()
    for a, b in zip(map(json.loads, indexed), map(json.loads, exact), strict=True):
        assert [r["id"] for r in a["results"]] == [r["id"] for r in b["results"]]
        assert [r["score"] for r in a["results"]] == [r["score"] for r in b["results"]]
    again = _admin(env, "optimize", "--json")
    assert json.loads(again.stdout) == {**json.loads(again.stdout), "built": False,
                                        "indexed_vectors": 20, "vectors": 20}
