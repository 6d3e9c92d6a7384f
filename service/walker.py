"""Finding image files under a root, deterministically, optionally one shard of them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from service.errors import ConfigError
from service.images import is_image_name


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: a stable partition of files by relative path."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"i/n"`` (0 <= i < n)."""
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ConfigError(f"--shard {text}: need 0 <= i < n")
        return shard

    def owns(self, relative_path: str) -> bool:
        digest = hashlib.blake2b(relative_path.encode("utf-8", "surrogateescape"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % self.count == self.index


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, POSIX separators, always valid UTF-8 (payload-safe).

    ``root`` may be resolved while ``path`` is not (a relative or symlinked folder given on
    the command line); the file's folder is then resolved too, never the file itself, so a
    symlinked file keeps its own name. Linux allows any bytes in a file name: bytes that are
    not UTF-8 are written as ``\\xNN`` escapes (``b"caf\\xe9.jpg"`` -> ``caf\\xe9.jpg``),
    because Qdrant payloads, JSON and terminals need valid UTF-8. The file's identity stays
    its content hash (``sha256`` payload), see docs/reliability.md.
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        folder = Path(os.path.abspath(path.parent)).resolve()
        relative = (folder / path.name).relative_to(root.resolve())
    return os.fsencode(relative.as_posix()).decode("utf-8", "backslashreplace")


def iter_image_files(
    root: Path,
    shard: Shard | None = None,
    on_error: Callable[[Path, OSError], None] | None = None,
) -> Iterator[Path]:
    """Image files below ``root`` in sorted order; hidden entries are skipped.

    Directory symlinks are not followed (no loops); file symlinks are yielded and resolved
    when read, so a broken one is reported by the reader rather than silently dropped.
    ``on_error(folder, error)`` is called for each folder that cannot be listed (e.g. no
    permission), whose images would otherwise be skipped without a word.
    """

    def walk_error(error: OSError) -> None:
        if on_error is not None:
            on_error(Path(error.filename or root), error)

    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not is_image_name(path):
                continue
            if shard is None or shard.owns(relative_posix(path, root)):
                yield path
