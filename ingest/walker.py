"""Finding image files under a root, deterministically, optionally one shard of them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
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
    return path.relative_to(root).as_posix()


def iter_image_files(root: Path, shard: Shard | None = None) -> Iterator[Path]:
    """Image files below ``root`` in sorted order; hidden entries are skipped.

    Directory symlinks are not followed (no loops); file symlinks are yielded and resolved
    when read, so a broken one is reported by the reader rather than silently dropped.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not is_image_name(path):
                continue
            if shard is None or shard.owns(relative_posix(path, root)):
                yield path
