"""Progress reporting for training: a no-op observer and a rich console display."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@dataclass(frozen=True)
class EpochStats:
    """Losses of one finished epoch (mean squared error per pixel, pixels in [0, 1])."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    seconds: float
    improved: bool


class TrainingObserver:
    """Receives progress events; this base class ignores them all."""

    def stage(self, description: str, total: int | None) -> None:
        """A new stage starts (loading images, training, re-embedding)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more items of the current stage are done."""

    def batch(self, epoch: int, loss: float) -> None:
        """One training batch finished with this loss."""

    def epoch(self, stats: EpochStats, epochs: int) -> None:
        """One epoch finished."""

    def message(self, text: str) -> None:
        """A one-line note for the user."""

    def close(self) -> None:
        """Stop any live display."""


class RichTrainingDisplay(TrainingObserver):
    """A progress bar per stage plus one line per epoch with train and validation loss."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.progress.start()
        self._task: TaskID | None = None
        self._best = float("inf")

    def stage(self, description: str, total: int | None) -> None:
        if self._task is not None:
            self.progress.stop_task(self._task)
        self._task = self.progress.add_task(description, total=total, note="")

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self.progress.advance(self._task, n)

    def batch(self, epoch: int, loss: float) -> None:
        if self._task is not None:
            self.progress.update(
                self._task, advance=1, note=f"epoch {epoch} batch loss {loss:.5f}"
            )

    def epoch(self, stats: EpochStats, epochs: int) -> None:
        self._best = min(self._best, stats.val_loss)
        mark = " [green]best[/]" if stats.improved else ""
        self.progress.console.print(
            f"epoch {stats.epoch:3d}/{epochs}  train loss {stats.train_loss:.5f}  "
            f"val loss {stats.val_loss:.5f}  ({stats.seconds:.1f}s){mark}",
            highlight=False,
            soft_wrap=True,
        )
        if self._task is not None:
            self.progress.update(self._task, note=f"best val {self._best:.5f}")

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        self.progress.stop()
