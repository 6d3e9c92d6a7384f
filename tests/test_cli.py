"""The `simimg-admin` command line as a user runs it: real processes, real data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import Settings
from tests.processes import run_admin


@pytest.fixture
def ingested(settings: Settings, imagenet_dir: Path) -> Settings:
    done = run_admin(settings, "ingest", str(imagenet_dir), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["added"] == 20 and summary["failed"] == []
    return settings


def test_search_json_lines_one_object_per_query(
    ingested: Settings, imagenet_dir: Path, photo_dir: Path
) -> None:
    inside = sorted(imagenet_dir.glob("*.jpg"))[2]
    outside = photo_dir / "chelsea.png"
    done = run_admin(ingested, "search", str(inside), str(outside), "--k", "4", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["query"] for line in lines] == [str(inside), str(outside)]
    for line in lines:
        assert len(line["results"]) == 4
        for result in line["results"]:
            assert {"id", "score", "path", "root", "cluster"} <= result.keys()
            assert result["cluster"] is None
    assert lines[0]["results"][0]["path"] == inside.name
    assert lines[0]["results"][0]["score"] > 0.99


def test_search_prints_a_table(ingested: Settings, imagenet_dir: Path) -> None:
    query = sorted(imagenet_dir.glob("*.jpg"))[0]
    done = run_admin(ingested, "search", str(query))
    assert done.returncode == 0, done.stderr
    assert query.name in done.stdout
    assert "score" in done.stdout


def test_status_json_counts_points(ingested: Settings) -> None:
    done = run_admin(ingested, "status", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["points"] == 20
    assert info["vectors"]["mobilenet"] == 20
    assert info["vectors"]["autoencoder"] == 0
    assert info["indexed_vectors"] == 0  # 20 points: below the full-scan threshold, scanned
    assert info["store"] == "edge"


def test_reingest_through_the_cli_adds_nothing(ingested: Settings, imagenet_dir: Path) -> None:
    done = run_admin(ingested, "ingest", str(imagenet_dir), "--json")
    summary = json.loads(done.stdout)
    assert (summary["added"], summary["already_stored"]) == (0, 20)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "no-such-file.jpg"], "query image not found: no-such-file.jpg"),
        (["ingest", "no-such-folder"], "folder not found: no-such-folder"),
        (["search", "QUERY", "--k", "0"], "--k must be between 1 and 1000"),
        (["search", "QUERY", "--space", "pixels"], "--space must be one of"),
        (["search"], "give a query image or at least one --like image"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(
    ingested: Settings, imagenet_dir: Path, args: list[str], message: str
) -> None:
    query = str(sorted(imagenet_dir.glob("*.jpg"))[0])
    done = run_admin(ingested, *[query if a == "QUERY" else a for a in args])
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]


def test_empty_collection_exits_nonzero(settings: Settings, imagenet_dir: Path) -> None:
    done = run_admin(settings, "search", str(next(imagenet_dir.glob("*.jpg"))))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: the collection is empty: run `simimg-admin ingest FOLDER` first"
    ]


def test_autoencoder_space_before_training_is_a_clear_error(
    ingested: Settings, imagenet_dir: Path
) -> None:
    done = run_admin(ingested, "search", str(next(imagenet_dir.glob("*.jpg"))),
                     "--space", "autoencoder")
    assert done.returncode == 1
    assert "no autoencoder model is trained yet" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_data_dir_in_use_by_another_process(ingested: Settings, imagenet_dir: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from service.config import Settings\n"
         "from service.store import open_store\n"
         f"store = open_store(Settings(data_dir={str(ingested.data_dir)!r}))\n"
         "print('ready', flush=True)\n"
         "sys.stdin.readline()\n"
         "store.close()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = run_admin(ingested, "search", str(next(imagenet_dir.glob("*.jpg"))))
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "in use" in lines[0]
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)
    after = run_admin(ingested, "status", "--json")
    assert json.loads(after.stdout)["points"] == 20
