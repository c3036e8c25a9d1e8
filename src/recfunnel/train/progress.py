"""A rich progress bar for training epochs that stays silent when stderr is not a terminal."""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Any

logger = logging.getLogger("recfunnel.train")


class EpochProgress:
    """Context manager showing one bar per epoch (rows done, rows/s, loss).

    Args:
        enabled: True/False to force; None shows the bar only on a terminal.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            rate = TextColumn("{task.fields[rate]} rows/s")
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                rate, TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(), transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_epoch(self, epoch: int, max_epochs: int, rows: int | None) -> None:
        """Begin a new bar for ``epoch`` (of unknown length when ``rows`` is None: a stream)."""
        if self._progress is not None:
            self._task = self._progress.add_task("train", total=rows, epoch=f"{epoch}/{max_epochs}", loss="-",
                                                rate="-")

    def advance(self, rows: int, loss: float | None) -> None:
        """Count ``rows`` more rows done; show ``loss`` when given."""
        if self._progress is not None and self._task is not None:
            if loss is None:
                self._progress.advance(self._task, rows)
            else:
                speed = self._progress.tasks[-1].speed
                self._progress.update(self._task, advance=rows, loss=f"{loss:.4f}",
                                      rate=f"{speed:,.0f}" if speed else "-")

    def epoch_done(self, row: dict[str, float]) -> None:
        """Log the epoch's summary row."""
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
        logger.info("epoch %d: %s", int(row["epoch"]), shown)
