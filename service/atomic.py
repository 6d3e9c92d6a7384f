"""Crash-safe writes: every file or directory of state is published whole or not at all.

A write goes to a temporary sibling with a unique name (``.<name>.<random>.tmp``), is
flushed and fsynced, renamed over the target (``os.replace``, atomic on POSIX), and then
the folder is fsynced so that the rename itself survives a power cut. A crash at any moment
leaves either the old content or the new one, never a mix. Directories (checkpoints) are
built under a temporary name the same way, every file in them fsynced, then renamed.

Leftovers of killed writers: a writer holds an exclusive ``flock`` on its temporary from
creation until the rename. A process killed mid-write leaves its temporary behind, and the
kernel drops the lock. Readers never see it (they open targets by exact name; temporary
names are hidden and end in ``.tmp``), and the next write of the same target deletes it.
The lock tells a dead writer's leftover from a live concurrent writer's temporary, which
is left alone (on a filesystem without locks, leftovers stay).

This is the only module that renames files (``tests/test_atomic_write.py`` checks): new
state writers use it instead of their own temp-and-rename.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
# Files and directories are readable by services running as another user (mkstemp and
# mkdtemp would make them private to the writer).
FILE_MODE = 0o644
DIR_MODE = 0o755
# ".<target name>.<tempfile's random characters>.tmp"
_RANDOM_CHARS = 8
_TEMP_NAME = re.compile(rf"\..+\.[a-z0-9_]{{{_RANDOM_CHARS}}}\.tmp", re.DOTALL)


def is_temp_name(name: str) -> bool:
    """Whether a directory entry is a temporary of this module (never a published target)."""
    return _TEMP_NAME.fullmatch(name) is not None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` to write by name; published on a clean exit.

    For writers that insist on a file name (``torch.onnx.export``). On an exception the
    temporary is deleted and ``path`` is untouched.
    """
    with _published(Path(path), directory=False) as tmp:
        yield tmp


@contextmanager
def atomic_write(
    path: Path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """A file handle whose content replaces ``path`` in one step when the block ends.

    ``mode``: ``"wb"`` or ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise). A
    symlink keeps pointing at the file, which gets the new content. A ``path`` that is not
    a regular file (a pipe, a terminal, ``/dev/stdout`` given as an export target) has
    nothing to replace: it is written directly.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole new file: mode 'w' or 'wb', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    path = Path(path)
    if path.exists() and not path.is_file():
        with open(path, mode, encoding=encoding, newline=newline) as handle:
            yield handle
        return
    with atomic_path(path.resolve()) as tmp, \
            open(tmp, mode, encoding=encoding, newline=newline) as handle:
        yield handle
        handle.flush()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as indented JSON with sorted keys (values JSON cannot hold become strings)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any | None:
    """The JSON record at ``path``, or None when it does not exist."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@contextmanager
def publish_dir(path: Path) -> Iterator[Path]:
    """A temporary directory that becomes ``path``, complete, when the block ends.

    Every file written into it is fsynced before the rename. ``path`` must not exist yet
    (FileExistsError). On an exception the temporary directory is deleted.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    with _published(path, directory=True) as tmp:
        yield tmp


@contextmanager
def _published(path: Path, directory: bool) -> Iterator[Path]:
    """Temporary beside ``path`` (locked while in use) -> fsync -> rename -> fsync folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp, lock = _locked_temp(path, directory)
    try:
        try:
            yield tmp
            if directory:
                _fsync_tree(tmp)
            else:
                _fsync(tmp)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
    finally:
        os.close(lock)
    _fsync(path.parent)


def temp_siblings(path: Path) -> list[Path]:
    """Temporaries of ``path`` in its folder, whether their writer is alive or not."""
    path = Path(path)
    prefix = f".{path.name}."
    length = len(prefix) + _RANDOM_CHARS + len(TEMP_SUFFIX)
    return [tmp for tmp in _temps_in(path.parent)
            if tmp.name.startswith(prefix) and len(tmp.name) == length]


def remove_stale_temps(path: Path) -> int:
    """Delete the temporaries of ``path`` whose writer is gone; return how many."""
    return sum(_remove_if_stale(tmp) for tmp in temp_siblings(path))


def remove_stale_temps_in(folder: Path) -> int:
    """Delete every temporary in ``folder`` whose writer is gone (for folders whose
    targets are never written twice, such as checkpoint versions); return how many."""
    return sum(_remove_if_stale(tmp) for tmp in _temps_in(Path(folder)))


def _temps_in(folder: Path) -> list[Path]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [folder / name for name in names if _TEMP_NAME.fullmatch(name)]


def _remove_if_stale(tmp: Path) -> bool:
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except OSError:
        return False  # published or removed meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it (or locks are unsupported here: keep it)
        if not _is_same_file(tmp, fd):
            return False
        _remove(tmp)
        return True
    finally:
        os.close(fd)


def _locked_temp(path: Path, directory: bool) -> tuple[Path, int]:
    """A new temporary beside ``path`` and an open descriptor holding its lock."""
    prefix, parent = f".{path.name}.", path.parent
    while True:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=parent))
            fd = os.open(tmp, os.O_RDONLY)
            tmp.chmod(DIR_MODE)
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=parent)
            tmp = Path(name)
            os.fchmod(fd, FILE_MODE)
        # Blocks only while another writer's clean-up looks at it; if that clean-up took
        # it for a dead writer's leftover and deleted it, start again with a new name.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: no clean-up can take it either
            return tmp, fd
        if _is_same_file(tmp, fd):
            return tmp, fd
        os.close(fd)


def _remove(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def _is_same_file(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _fsync(path: Path) -> None:
    """Flush a file's content, or a folder's entries (renames, new files), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


def move_file(source: Path, target: Path) -> None:
    """Move a user's file to ``target``, never replacing an existing file.

    On one filesystem: a hard link then the unlink of ``source`` (no window in which the
    content exists nowhere, and an existing ``target`` raises FileExistsError). Across
    filesystems: a copy to a locked temporary beside ``target`` (fsynced), linked into place,
    then ``source`` is removed. Either way the content is never deleted before it is safe.
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        tmp, lock = _locked_temp(target, directory=False)
        try:
            shutil.copy2(source, tmp)
            _fsync(tmp)
            os.link(tmp, target)
        finally:
            _remove(tmp)
            os.close(lock)
    _fsync(target.parent)
    source.unlink()
    _fsync(source.parent)


def rename_dir(source: Path, target: Path) -> None:
    """Rename directory ``source`` to ``target`` (same filesystem, ``target`` absent) in one
    step, then fsync the folder so the rename survives a power cut (the index build's swap
    of a shard directory and its undo)."""
    source, target = Path(source), Path(target)
    source.rename(target)
    _fsync(target.parent)
