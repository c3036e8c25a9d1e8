"""Callbacks: the Trainer's policies (early stopping, learning-rate plateaus, checkpoints, progress)
and the hooks a user's own code gets (tuning's pruning, logging, a distributed run's agreement)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.tasks import MultiTask, Task
from recfunnel.train.checkpoint import save_run
from recfunnel.train.optim import LazyRowL2
from recfunnel.train.progress import EpochProgress

if TYPE_CHECKING:  # the Trainer calls callbacks; they see it through Run.trainer
    from recfunnel.train.trainer import Trainer

logger = logging.getLogger("recfunnel.train")


@dataclass
class Run:
    """One ``Trainer.fit`` call as callbacks see it; a callback sets ``stop = True`` to end it.

    ``epoch`` counts finished epochs. ``best_*`` and ``bad_epochs`` belong to early stopping and
    ``plateau_epochs`` to the learning-rate decay; they live here so that a checkpoint holds them.
    """

    trainer: Trainer
    model: nn.Module
    task: Task | MultiTask
    optimizers: list[torch.optim.Optimizer]
    has_valid: bool
    num_rows: int | None
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    plateau_epochs: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    row_l2: LazyRowL2 | None = None
    step_rows: int = 0  # the rows of the last step, every process's together

    def monitored(self, row: dict[str, float]) -> float | None:
        """The validation value early stopping and the plateau watch in an epoch's ``row``."""
        return row.get(f"valid_{self.task.monitor}") if self.has_valid else None

    def improved(self, score: float) -> bool:
        """True when ``score`` beats the best so far in the task's direction (NaN never does)."""
        if math.isnan(score):
            return False
        best = self.best_score
        return best is None or (score > best if self.task.monitor_mode == "max" else score < best)


class Callback:
    """Override the hooks you need; each gets the Run (set ``run.stop = True`` to end training).

    Example:
        >>> class StopAfterTwo(Callback):
        ...     def on_epoch_end(self, run, row):
        ...         run.stop = run.epoch >= 2
    """

    def on_fit_start(self, run: Run) -> None:
        """Before the first epoch (after a resume restored the run)."""

    def on_epoch_start(self, run: Run) -> None:
        """Before each epoch's first batch."""

    def on_batch_end(self, run: Run, batch: Batch, loss: torch.Tensor) -> None:
        """After each optimiser step; ``loss`` is the step's detached loss (a 0-dim tensor)."""

    def on_epoch_end(self, run: Run, row: dict[str, float]) -> None:
        """After each epoch, with its history row (train loss, timing, ``valid_*`` metrics)."""

    def on_fit_end(self, run: Run) -> None:
        """After the last epoch, also when training stopped early or raised."""


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without a better validation score; restore the best weights."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, run: Run, row: dict[str, float]) -> None:
        score = run.monitored(row)
        if score is None:
            return
        if run.improved(score):
            run.best_score, run.best_epoch, run.bad_epochs = score, run.epoch, 0
            run.best_weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
            return
        run.bad_epochs += 1
        run.stop = run.stop or run.bad_epochs >= self.patience

    def on_fit_end(self, run: Run) -> None:
        if run.best_weights is not None:
            run.model.load_state_dict(run.best_weights)
            logger.info("kept the weights of epoch %d of %d (best valid %s %.4f)", run.best_epoch, run.epoch,
                        run.task.monitor, run.best_score)


class ReduceLROnPlateau(Callback):
    """Multiply every learning rate by ``factor`` after ``patience`` epochs without improvement.

    Runs after EarlyStopping in the Trainer's list, so ``run.bad_epochs`` is already up to date.
    """

    def __init__(self, factor: float, patience: int) -> None:
        self.factor, self.patience = factor, patience

    def on_epoch_end(self, run: Run, row: dict[str, float]) -> None:
        if run.monitored(row) is None or self.factor >= 1:
            return
        if run.bad_epochs == 0:
            run.plateau_epochs = 0
            return
        run.plateau_epochs += 1
        if run.plateau_epochs >= self.patience:
            run.plateau_epochs = 0
            for optimizer in run.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] *= self.factor
            logger.info("validation %s did not improve; learning rate x%s", run.task.monitor, self.factor)


class Checkpoint(Callback):
    """Write the run (weights, optimizers, the callbacks' state) to ``directory`` after each epoch."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_epoch_end(self, run: Run, row: dict[str, float]) -> None:
        save_run(self.directory, run)


class ProgressBar(Callback):
    """A rich bar per epoch on a terminal, and one log line per epoch."""

    def __init__(self, enabled: bool | None) -> None:
        self.bar = EpochProgress(enabled)

    def on_fit_start(self, run: Run) -> None:
        self.bar.__enter__()

    def on_epoch_start(self, run: Run) -> None:
        self.bar.start_epoch(run.epoch + 1, run.trainer.max_epochs, run.num_rows)
        self._step = 0

    def on_batch_end(self, run: Run, batch: Batch, loss: torch.Tensor) -> None:
        self.bar.advance(run.step_rows, float(loss) if self._step % 20 == 0 else None)  # a sync every 20 steps
        self._step += 1

    def on_epoch_end(self, run: Run, row: dict[str, Any]) -> None:
        self.bar.epoch_done(row)

    def on_fit_end(self, run: Run) -> None:
        self.bar.__exit__(None, None, None)
