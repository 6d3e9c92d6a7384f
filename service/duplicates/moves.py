"""Moving the copies a group does not keep into a folder the user names (never deleting).

A moved file keeps its place below its root: ``<dest>/<root folder name>/<path>``; a name
already taken gets `` (2)``, `` (3)``... before its extension. The destination may not lie
inside an ingested folder (the moved copies would stay in the library).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from service.atomic import move_file
from service.duplicates.groups import DuplicateGroup
from service.errors import ConfigError, ImageDecodeError
from service.locations import location_file


@dataclass(frozen=True)
class PlannedMove:
    group: int
    id: str
    root: str
    source: Path
    target: Path


@dataclass(frozen=True)
class MoveOutcome:
    move: PlannedMove
    error: str | None  # None: moved


def plan_moves(groups: Iterable[DuplicateGroup], dest: Path,
               ingested_roots: Iterable[str]) -> list[PlannedMove]:
    """Where each non-kept file of ``groups`` would go; nothing is touched."""
    dest = Path(dest).expanduser().resolve()
    for root in ingested_roots:
        if dest.is_relative_to(root):
            raise ConfigError(f"--move-extras-to {dest} lies inside the ingested folder "
                              f"{root}; choose a folder outside the library")
    taken: set[Path] = set()
    planned = []
    for group in groups:
        for item in group.extras:
            try:
                source = location_file(item.root, item.path)
            except ImageDecodeError:
                continue
            target = _free_name(dest / (Path(item.root).name or "root") / item.path, taken)
            taken.add(target)
            planned.append(PlannedMove(group.number, item.id, item.root, source, target))
    return planned


def _free_name(target: Path, taken: set[Path]) -> Path:
    candidate, n = target, 1
    while candidate in taken or candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
    return candidate


def apply_moves(planned: Iterable[PlannedMove]) -> list[MoveOutcome]:
    """Move each planned file; a failure is reported and the others still move."""
    outcomes = []
    for move in planned:
        try:
            if not move.source.is_file():
                raise FileNotFoundError(f"{move.source} is gone")
            move_file(move.source, move.target)
            outcomes.append(MoveOutcome(move, None))
        except OSError as exc:
            outcomes.append(MoveOutcome(move, str(exc)))
    return outcomes
