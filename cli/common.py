"""Shared CLI plumbing: global options -> Settings, one-line errors, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from service.config import Settings
from service.errors import SimimgError

# Results go to stdout; progress, summaries and errors go to stderr so that --json output
# stays machine-readable.
out = Console()
err = Console(stderr=True)


@dataclass
class GlobalOptions:
    """Options given before the command name; None means "from the environment"."""

    overrides: dict[str, Any] = field(default_factory=dict)


def settings_from(ctx: typer.Context, **command_overrides: Any) -> Settings:
    """Environment, then global flags, then the command's own flags (None = not given)."""
    options: GlobalOptions = ctx.find_root().obj or GlobalOptions()
    merged = {**options.overrides, **{k: v for k, v in command_overrides.items() if v is not None}}
    return Settings.from_env(**merged)


def notice(message: str) -> None:
    """A one-line note on stderr (e.g. recovery work done while opening the collection)."""
    err.print(f"[bold yellow]note:[/] {message}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every SimimgError into a one-line message and exit code 1."""
    try:
        yield
    except SimimgError as exc:
        raise fail(str(exc)) from None


def require_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise fail(f"{what} not found: {path}")
    if not path.is_file():
        raise fail(f"{what} is not a file: {path}")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise fail(f"{what} not found: {path}")
    if not path.is_dir():
        raise fail(f"{what} is not a directory: {path}")
    return path


def print_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class RateColumn(ProgressColumn):
    """Items per second over the task's elapsed time."""

    def __init__(self, unit: str = "images/s") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.1f} {self.unit}", style="progress.data.speed")


def progress_bar(unit: str = "images/s") -> Progress:
    """The standard progress display for long work (on stderr)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
