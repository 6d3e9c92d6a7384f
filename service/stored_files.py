"""From a point's payload back to the file it was ingested from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from service.errors import ImageDecodeError
from service.store.schema import PAYLOAD_PATH, PAYLOAD_ROOT


def stored_file(payload: dict[str, Any]) -> Path:
    """The file a payload names (``root`` / ``path``).

    Refuses payloads without an absolute root and paths that climb out of their root, so
    nothing built on this (thumbnails in the UI, re-embedding) can be steered to another file.
    """
    root = payload.get(PAYLOAD_ROOT)
    relative = payload.get(PAYLOAD_PATH)
    if not isinstance(root, str) or not isinstance(relative, str) or not relative:
        raise ImageDecodeError("stored point has no usable root/path payload")
    if not Path(root).is_absolute():
        raise ImageDecodeError(f"stored root {root!r} is not an absolute path")
    # Normalised, not resolved: ".." may not climb out, but an ingested symlink still works.
    base = Path(os.path.normpath(root))
    file = Path(os.path.normpath(base / relative))
    if not file.is_relative_to(base):
        raise ImageDecodeError(f"stored path {relative!r} lies outside its root")
    return file
