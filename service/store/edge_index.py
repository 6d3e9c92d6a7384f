"""Building the embedded store's HNSW index while the process keeps answering searches.

``EdgeShard.optimize()`` holds the GIL for the whole build (measured: a second thread did
not run once in a 48 s build), and a shard directory can be open only once. So a process
that must keep serving (``simimg-admin serve``) builds on a copy, in a child process:

1. writes are held back (the store's write gate) and the shard is flushed;
2. the shard directory is copied next to itself (``<name>.indexing``);
3. a child process (``python -m service.store.edge_index COPY``) loads the copy, runs
   ``optimize()`` and closes it; the parent keeps answering searches from the live shard,
   exactly as before the build;
4. the live shard is closed, the copy put in its place and loaded (searches wait only for
   this swap, about as long as opening the store), and writes resume.

A crash between the two renames of step 4 leaves the live data in ``<name>.replaced``;
:func:`recover` (run when the store opens) puts it back. Disk: twice the shard while building.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from service.atomic import rename_dir
from service.errors import StoreError

_BUILDING = ".indexing"
_REPLACED = ".replaced"


class SwappableShard(Protocol):
    """What a build needs of :class:`service.store.edge.EdgeStore`."""

    path: Path
    _lock: Any  # serialises shard calls (searches)
    _write_gate: Any  # held by every write

    def flush(self) -> None: ...

    def _swap_in(self, built: Path, replaced: Path) -> None: ...


@dataclass(frozen=True)
class IndexBuild:
    """What one build did."""

    optimized: bool
    indexed_vectors: int
    copy_s: float
    build_s: float
    swap_s: float


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def recover(path: Path) -> None:
    """Undo an interrupted build: put the live shard back, drop a half-made copy."""
    replaced = _sibling(path, _REPLACED)
    if replaced.exists():
        if path.exists():
            shutil.rmtree(replaced)  # the swap finished; only the clean-up was missed
        else:
            rename_dir(replaced, path)
    shutil.rmtree(_sibling(path, _BUILDING), ignore_errors=True)


def build_index_aside(store: SwappableShard) -> IndexBuild:
    """Build ``store``'s index on a copy in a child process; searches go on meanwhile.

    Writes from other threads wait until the new shard is in place.
    """
    path = store.path
    copy = _sibling(path, _BUILDING)
    with store._write_gate:
        started = time.perf_counter()
        with store._lock:
            store.flush()
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(path, copy)
        copied = time.perf_counter()
        result = _optimize_in_child(copy)
        built = time.perf_counter()
        if result["optimized"]:
            with store._lock:
                store._swap_in(copy, _sibling(path, _REPLACED))
        else:
            shutil.rmtree(copy, ignore_errors=True)
        swapped = time.perf_counter()
    return IndexBuild(bool(result["optimized"]), int(result["indexed_vectors"]),
                      copied - started, built - copied, swapped - built)


def _optimize_in_child(copy: Path) -> dict[str, int | bool]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "service.store.edge_index", str(copy)],
        capture_output=True, text=True, env=env, check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(copy, ignore_errors=True)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StoreError(f"building the vector index failed: {last}")
    result: dict[str, int | bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _main(argv: list[str]) -> int:
    """Child process: optimize the shard copy at ``argv[0]``, print what it did as JSON."""
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(argv[0])
    try:
        optimized = shard.optimize()
        indexed = shard.info().indexed_vectors_count
        shard.flush()
    finally:
        shard.close()
    print(json.dumps({"optimized": bool(optimized), "indexed_vectors": int(indexed)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
