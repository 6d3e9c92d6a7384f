"""The filter options shared by ``search``, ``browse`` and ``facets``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.filters import SearchFilters

After = Annotated[str | None, typer.Option(
    help="Only images taken on or after this date (2024, 2024-06, 2024-06-01, ISO date-time)"
)]
Before = Annotated[str | None, typer.Option(
    help="Only images taken before this date (same forms as --after)"
)]
Camera = Annotated[str | None, typer.Option(
    help="Only images whose camera ('Make Model', see `facets camera`) has these words"
)]
Label = Annotated[str | None, typer.Option(
    help="Only images with this label word (e.g. dog, animal; see `facets labels`)"
)]
Folder = Annotated[Path | None, typer.Option(
    help="Only images somewhere below this folder"
)]
Cluster = Annotated[int | None, typer.Option(help="Only images in this cluster (-1 = noise)")]


def parse_filters(
    after: str | None, before: str | None, camera: str | None, label: str | None,
    folder: Path | None,
) -> SearchFilters:
    """The options as filters; raises ConfigError (a one-line error) on a bad value."""
    return SearchFilters.parse(after, before, camera, label, folder)
