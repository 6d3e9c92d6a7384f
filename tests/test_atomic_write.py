"""The crash-safe write helper (service/atomic.py), killed with SIGKILL between its steps.

A child Python process writes a large new content through the helper and is killed either
at a named step (it stops there and says so: after opening the temporary, half-way through
the bytes, before and after each fsync, before and after the rename) or at a random moment
of a loop of writes. Afterwards the target holds exactly the old or exactly the new
content, never a mix, and at most the killed writer's own temporary is left; the next write
of the same target removes it. A kill cannot drop the page cache, so these tests show
atomicity against process death; the fsyncs that make it survive a power cut are checked
to be called in order, not by cutting power.

Last, a static check: no module of the app packages renames files except service/atomic.py.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import random
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.atomic import (
    atomic_path,
    atomic_write,
    is_temp_name,
    publish_dir,
    read_json,
    remove_stale_temps_in,
    temp_siblings,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from tests.conftest import report_case_counts
from tests.processes import REPO, cli_env

SIZE = 8 * 1024 * 1024  # large enough that a write takes several syscalls and page flushes
LOOP_SIZE = 8 * 1024 * 1024
LOOP_ROUNDS = int(os.environ.get("SIMIMG_ATOMIC_KILLS", "20"))
SEED = int(os.environ.get("SIMIMG_CRASH_SEED", "0"))
STATS: dict[str, int] = {}

# Shared by every child: content of version i, and a pause that announces a step and
# waits to be killed there.
_CHILD_PRELUDE = """
import os, random, sys, time
from pathlib import Path
from service import atomic

POOLS = {}

def content(version, size):
    if size not in POOLS:
        POOLS[size] = random.Random(0).randbytes(size - 10)
    pool, shift = POOLS[size], version * 7919 % (size - 10)
    return b"v%08d\\n" % version + pool[shift:] + pool[:shift]

def pause(name):
    if name == STEP:
        print(name, flush=True)
        time.sleep(600)
"""

# Named steps: the child patches os.fsync / os.replace / os.rename (the helper looks them up
# on the os module at call time) to stop before and after each.
_CHILD_STEPS = _CHILD_PRELUDE + """
target, STEP, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
fsync_calls = []

def fsync(fd):
    fsync_calls.append(fd)
    pause(f"before-fsync-{len(fsync_calls)}")
    real_fsync(fd)

def rename_with(real):
    def rename(src, dst):
        pause("before-rename")
        real(src, dst)
        pause("after-rename")
    return rename

os.fsync, os.replace, os.rename = fsync, rename_with(real_replace), rename_with(real_rename)
new = content(2, size)
if sys.argv[4] == "file":
    with atomic.atomic_write(target, "wb") as handle:
        pause("opened")
        handle.write(new[: size // 2])
        handle.flush()
        pause("half-written")
        handle.write(new[size // 2 :])
        pause("written")
else:
    with atomic.publish_dir(target) as folder:
        pause("opened")
        (folder / "a.bin").write_bytes(new)
        pause("half-written")
        (folder / "b.bin").write_bytes(new[::-1])
        pause("written")
pause("done")
print("finished", flush=True)
"""

# Random moments: write versions start+1, start+2, ... until killed.
_CHILD_LOOP = _CHILD_PRELUDE + """
STEP = None
target, version, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
content(version, size)  # the random pool is made before the first kill can land
print("ready", flush=True)
while True:
    version += 1
    atomic.write_bytes_atomic(target, content(version, size))
    print(f"done {version}", flush=True)
"""

FILE_STEPS_BEFORE_RENAME = ["opened", "half-written", "written", "before-fsync-1",
                            "before-rename"]
# fsync 1 is the file's, 2 the folder's after the rename.
FILE_STEPS_AFTER_RENAME = ["after-rename", "before-fsync-2", "done"]
# publish_dir fsyncs a.bin, b.bin and the temporary folder (1-3), then renames, then fsyncs
# the parent (4). Both renames are os.replace.
DIR_STEPS_BEFORE_RENAME = ["opened", "half-written", "written", "before-fsync-1",
                           "before-fsync-3", "before-rename"]
DIR_STEPS_AFTER_RENAME = ["after-rename", "before-fsync-4", "done"]


@functools.cache
def _pool(size: int) -> bytes:
    return random.Random(0).randbytes(size - 10)


def content(version: int, size: int) -> bytes:
    """Version ``version``: a header naming it, then random bytes rotated by the version
    (as the children make it: cheap, so their time goes to writing)."""
    pool, shift = _pool(size), version * 7919 % (size - 10)
    return b"v%08d\n" % version + pool[shift:] + pool[:shift]


def start_child(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_line(child: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    line = child.stdout.readline() if ready else ""
    if not line:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"child said nothing (exit {child.returncode}): {err[-2000:]}")
    return line.strip()


def kill(child: subprocess.Popen[str]) -> str:
    """SIGKILL the child; the rest of what it printed (read through the same buffered
    reader as :func:`read_line`, which may hold lines already)."""
    assert child.stdout is not None and child.stderr is not None
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    out = child.stdout.read()
    child.stdout.close()
    child.stderr.close()
    return out


def kill_at(step: str, target: Path, kind: str) -> None:
    child = start_child(_CHILD_STEPS, str(target), step, str(SIZE), kind)
    assert read_line(child) == step
    kill(child)


@pytest.mark.parametrize("step", FILE_STEPS_BEFORE_RENAME + FILE_STEPS_AFTER_RENAME)
def test_file_killed_at_each_step_holds_old_or_new(tmp_path: Path, step: str) -> None:
    target = tmp_path / "state.bin"
    write_bytes_atomic(target, content(1, SIZE))
    kill_at(step, target, "file")
    renamed = step in FILE_STEPS_AFTER_RENAME
    assert target.read_bytes() == content(2 if renamed else 1, SIZE)
    leftovers = temp_siblings(target)
    assert len(leftovers) == (0 if renamed else 1)
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    # The next write removes the dead writer's temporary and publishes its own content.
    write_bytes_atomic(target, b"third")
    assert target.read_bytes() == b"third"
    assert temp_siblings(target) == []
    assert sorted(os.listdir(tmp_path)) == ["state.bin"]


@pytest.mark.parametrize("step", DIR_STEPS_BEFORE_RENAME + DIR_STEPS_AFTER_RENAME)
def test_directory_killed_at_each_step_is_absent_or_complete(tmp_path: Path, step: str) -> None:
    target = tmp_path / "ae-1"
    kill_at(step, target, "dir")
    if step in DIR_STEPS_AFTER_RENAME:
        assert sorted(os.listdir(target)) == ["a.bin", "b.bin"]
        assert (target / "a.bin").read_bytes() == content(2, SIZE)
        assert (target / "b.bin").read_bytes() == content(2, SIZE)[::-1]
        assert temp_siblings(target) == []
    else:
        assert not target.exists()
        [leftover] = temp_siblings(target)
        assert leftover.is_dir() and is_temp_name(leftover.name)
        # Checkpoint names are never reused, so pruning sweeps the folder for leftovers.
        assert remove_stale_temps_in(tmp_path) == 1
        assert os.listdir(tmp_path) == []


def test_killed_at_random_moments_never_leaves_a_partial_file(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    target = tmp_path / "record.bin"
    write_bytes_atomic(target, content(0, LOOP_SIZE))
    version = 0
    for _ in range(LOOP_ROUNDS):
        child = start_child(_CHILD_LOOP, str(target), str(version), str(LOOP_SIZE))
        assert read_line(child) == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        out = kill(child)
        finished = [int(line.split()[1]) for line in out.split("\n") if line.startswith("done")]
        last_done = finished[-1] if finished else version
        data = target.read_bytes()
        found = int(data[1:9])
        assert found in (last_done, last_done + 1), (found, last_done)
        assert data == content(found, LOOP_SIZE), "a partial or mixed file"
        leftovers = temp_siblings(target)
        assert len(leftovers) <= 1, "each write removes the temporaries of dead writers"
        key = "killed_mid_write" if leftovers else "killed_between_writes"
        STATS[key] = STATS.get(key, 0) + 1
        STATS["writes_completed"] = STATS.get("writes_completed", 0) + found - version
        version = found
    write_bytes_atomic(target, content(version + 1, LOOP_SIZE))
    assert sorted(os.listdir(tmp_path)) == ["record.bin"]
    report_case_counts("atomic", STATS)


def test_a_live_writers_temporary_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "CURRENT"
    with atomic_write(target, "w") as handle:
        handle.write("outer")
        handle.flush()
        write_bytes_atomic(target, b"inner")  # cleans up before writing: the outer is alive
        assert target.read_bytes() == b"inner"
        assert len(temp_siblings(target)) == 1
    assert target.read_text() == "outer"
    assert temp_siblings(target) == []


def test_failed_write_keeps_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_json_atomic(target, {"run": 1})
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write('{"run": ')
        raise RuntimeError("disk went away")
    with pytest.raises(ValueError), atomic_path(tmp_path / "model.onnx") as tmp:
        tmp.write_bytes(b"unverified export")
        raise ValueError("export differs")
    with pytest.raises(KeyError), publish_dir(tmp_path / "ae-2") as folder:
        (folder / "model.pt").write_bytes(b"half")
        raise KeyError("killed by the user")
    assert read_json(target) == {"run": 1}
    assert sorted(os.listdir(tmp_path)) == ["run.json"]
    with pytest.raises(FileExistsError), publish_dir(tmp_path / "run.json"):
        pass


def test_temporaries_belong_to_exactly_one_target(tmp_path: Path) -> None:
    """``.a.b.<random>.tmp`` is a temporary of ``a.b``, not of ``a``."""
    (tmp_path / ".a.b.abcd1234.tmp").write_text("x")
    (tmp_path / ".a.tmp").write_text("a user's own hidden file")
    assert [p.name for p in temp_siblings(tmp_path / "a.b")] == [".a.b.abcd1234.tmp"]
    assert temp_siblings(tmp_path / "a") == []
    write_json_atomic(tmp_path / "a", [1])
    assert (tmp_path / ".a.b.abcd1234.tmp").exists() and (tmp_path / ".a.tmp").exists()
    write_json_atomic(tmp_path / "a.b", [2])
    assert sorted(os.listdir(tmp_path)) == [".a.tmp", "a", "a.b"]
    assert json.loads((tmp_path / "a.b").read_text()) == [2]


def test_symlinks_are_followed_and_pipes_written_directly(tmp_path: Path) -> None:
    real, link = tmp_path / "labels.csv", tmp_path / "latest.csv"
    real.write_text("old")
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with ThreadPoolExecutor(1) as pool:
        received = pool.submit(fifo.read_bytes)
        write_bytes_atomic(fifo, b"through the pipe")
        assert received.result(timeout=30) == b"through the pipe"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["labels.csv", "latest.csv", "pipe"]


# --------------------------------------------------------------------------- one writer

APP_PACKAGES = ("service", "ingest", "training", "ui", "cli", "api")
HELPER = Path("service/atomic.py")
_RENAMES = {"replace", "rename", "renames"}


def rename_calls(source: str) -> list[int]:
    """Lines that rename a file: ``os.replace/rename/renames``, ``shutil.move``,
    ``from os import replace``, and ``Path.replace/rename`` (one argument; ``str.replace``
    takes two)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source)) if _renames(node))


def _renames(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module in ("os", "shutil") and any(
            alias.name in _RENAMES | {"move"} for alias in node.names)
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
    name = node.func.attr
    path_style = name in ("replace", "rename") and len(node.args) == 1 and not node.keywords
    return (owner == "os" and name in _RENAMES) or (owner == "shutil" and name == "move") \
        or path_style


def test_rename_check_finds_planted_renames() -> None:
    planted = textwrap.dedent("""
        import os, shutil
        from os import replace
        os.replace(a, b)
        shutil.move(a, b)
        tmp.replace(path)
        text.replace("a", "b")
        stamp.replace(tzinfo=None)
    """)
    assert rename_calls(planted) == [3, 4, 5, 6]


def test_only_the_helper_renames_files() -> None:
    offenders = []
    for package in APP_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO)
            if relative == HELPER:
                continue
            offenders += [f"{relative}:{line}" for line in rename_calls(path.read_text())]
    assert offenders == [], "write state through service.atomic, not with a rename of its own"
    assert rename_calls((REPO / HELPER).read_text()), "the helper itself is scanned correctly"
