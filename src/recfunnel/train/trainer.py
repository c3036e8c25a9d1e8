"""Trainer: the one training loop for every gradient-trained model."""

from __future__ import annotations

import inspect
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError, DataError, TrainingDivergedError
from recfunnel.tasks import GROUP, Task
from recfunnel.train.checkpoint import (
    flatten_optimizer,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)
from recfunnel.train.optim import LazyRowL2, build_optimizers, clip_gradients, split_parameters
from recfunnel.train.progress import EpochProgress

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What ``Trainer.fit`` learned about the run: one dict per epoch, and the best epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float | None = None
    stopped_early: bool = False


@dataclass
class _State:
    """Mutable loop state, saved in checkpoints."""

    epoch: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    plateau_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None
    row_l2: LazyRowL2 | None = None


def _is_number(value: Any) -> bool:
    """An int or float, and not a bool (``true`` in a YAML config is not a learning rate)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Trainer:
    """Fits a model on a task: shuffled mini-batches, sparse embedding updates, early stopping.

    A model whose training-mode ``forward`` sets a scalar tensor attribute ``auxiliary_loss``
    (None when it has none) gets it added to the task loss of that step, e.g. DIEN's auxiliary loss.

    Args:
        max_epochs: Upper bound on passes over the training rows.
        batch_size: Rows per optimisation step.
        lr: Learning rate of the dense AdamW optimizer.
        sparse_lr: Learning rate of the embedding tables' optimizer. Larger than ``lr`` by default,
            because each row is updated only in the batches that hold its id (0.01 was the best
            value for lazy Adam on every data set in BENCHMARKS.md; Adagrad wants about 0.05).
        weight_decay: AdamW weight decay of dense weights.
        embedding_l2: L2 penalty on the embedding tables, per row and per step as in full-table
            L2, paid lazily: a row's penalty for the steps since its last one is added when a batch
            next looks it up, so a step still touches only the batch's rows (``LazyRowL2``).
        sparse_optimizer: "adam" (lazy Adam), "adagrad" or "rowwise_adagrad" for the embedding tables.
        patience: Epochs without improvement of the monitored validation metric before stopping;
            the best epoch's weights are restored at the end.
        lr_decay: Factor applied to every learning rate after ``lr_patience`` epochs on a plateau.
        lr_patience: Epochs without improvement before the learning rate decays.
        grad_clip: Global gradient-norm bound (dense and sparse together); None disables it.
        seed: Seeds the shuffling and dropout of ``fit`` (global RNG state is restored after).
        device: Torch device, "cpu" by default.
        eval_batch_size: Rows per forward pass in evaluation and prediction.
        checkpoint_dir: If set, a checkpoint is written there after every epoch; ``fit(...,
            resume=True)`` continues from it.
        progress: Show a progress bar; None shows it only when stderr is a terminal.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> from recfunnel.models.ranking.fm import FM
        >>> from recfunnel.tasks import BinaryTask
        >>> result = Trainer(max_epochs=2, batch_size=16).fit(FM(toy_schema()), BinaryTask("click"),
        ...                                                 toy_batch(batch_size=64))
        >>> len(result.history)
        2
    """

    def __init__(self, *, max_epochs: int = 10, batch_size: int = 4096, lr: float = 1e-3,
                 sparse_lr: float = 0.01, weight_decay: float = 0.0, embedding_l2: float = 0.0,
                 sparse_optimizer: str = "adam",
                 patience: int = 2, lr_decay: float = 0.5, lr_patience: int = 1,
                 grad_clip: float | None = None, seed: int = 2026, device: str = "cpu",
                 eval_batch_size: int = 65536, checkpoint_dir: str | Path | None = None,
                 progress: bool | None = None) -> None:
        for name, value in (("max_epochs", max_epochs), ("batch_size", batch_size),
                            ("eval_batch_size", eval_batch_size), ("patience", patience),
                            ("lr_patience", lr_patience)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"trainer option {name} must be a positive integer; got {value!r}.")
        for name, number in (("lr", lr), ("sparse_lr", sparse_lr), ("grad_clip", grad_clip)):
            if number is not None and not (_is_number(number) and number > 0):
                raise ConfigError(f"trainer option {name} must be a positive number; got {number!r}.")
        for name, number in (("weight_decay", weight_decay), ("embedding_l2", embedding_l2)):
            if not (_is_number(number) and number >= 0):
                raise ConfigError(f"trainer option {name} must be a number >= 0; got {number!r}.")
        if not (_is_number(lr_decay) and 0 < lr_decay <= 1):
            raise ConfigError(f"trainer option lr_decay must be in (0, 1]; got {lr_decay!r}.")
        self.max_epochs, self.batch_size, self.lr, self.sparse_lr = max_epochs, batch_size, lr, sparse_lr
        self.weight_decay, self.embedding_l2, self.sparse_optimizer = weight_decay, embedding_l2, sparse_optimizer
        self.patience, self.lr_decay, self.lr_patience = patience, lr_decay, lr_patience
        self.grad_clip, self.seed, self.device = grad_clip, seed, torch.device(device)
        self.eval_batch_size = eval_batch_size
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress = progress

    # -- public ---------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The keyword arguments this Trainer was built with, as plain JSON values.

        ``Trainer(**trainer.options())`` builds an equal Trainer.
        """
        names = inspect.signature(Trainer.__init__).parameters
        values = {name: getattr(self, name) for name in names if name != "self"}
        values["device"] = str(self.device)
        values["checkpoint_dir"] = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        return values

    def fit(self, model: nn.Module, task: Task, train: Batch, valid: Batch | None = None, *,
            resume: bool = False) -> TrainResult:
        """Train ``model`` in place; with ``valid``, stop early and restore the best epoch's weights."""
        if len(train) == 0:
            raise DataError("the training data has no rows.")
        model.to(self.device)
        optimizers = build_optimizers(model, lr=self.lr, sparse_lr=self.sparse_lr,
                                      weight_decay=self.weight_decay, sparse_optimizer=self.sparse_optimizer)
        state = _State(row_l2=LazyRowL2(split_parameters(model)[1], self.embedding_l2) if self.embedding_l2 else None)
        if resume:
            self._restore(model, optimizers, state)
        train = train.to(self.device)
        with torch.random.fork_rng(devices=[]), EpochProgress(self.progress) as bar, warnings.catch_warnings():
            # torch's sparse optimizers build COO tensors without invariant checks and warn on
            # every call; the tensors come from autograd and are valid, so the warning is noise.
            warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
            while state.epoch < self.max_epochs:
                row = self._run_epoch(model, task, train, optimizers, state, bar)
                if valid is not None:
                    row.update({f"valid_{k}": v for k, v in self.evaluate(model, task, valid).items()})
                state.history.append(row)
                state.epoch += 1
                stop = self._after_epoch(model, task, optimizers, state, row, has_valid=valid is not None)
                bar.epoch_done(row)
                if self.checkpoint_dir is not None:
                    self._save(model, optimizers, state)
                if stop:
                    break
        if state.best_weights is not None:
            model.load_state_dict(state.best_weights)
            logger.info("kept the weights of epoch %d of %d (best valid %s %.4f)", state.best_epoch, state.epoch,
                        task.monitor, state.best_score)
        stopped = state.epoch < self.max_epochs
        return TrainResult(state.history, state.best_epoch, state.best_score, stopped)

    @torch.inference_mode()
    def predict(self, model: nn.Module, data: Batch) -> torch.Tensor:
        """Logits for every row of ``data``, in chunks of ``eval_batch_size``; shape (N,)."""
        was_training = model.training
        model.eval()
        try:
            chunks = [model(data[start:start + self.eval_batch_size].to(self.device)).float().cpu()
                      for start in range(0, len(data), self.eval_batch_size)]
        finally:
            model.train(was_training)
        return torch.cat(chunks) if chunks else torch.empty(0)

    def evaluate(self, model: nn.Module, task: Task, data: Batch) -> dict[str, float]:
        """The task's metrics on ``data``."""
        predictions = task.link(self.predict(model, data)).numpy()
        groups = data.labels.get(GROUP)
        return task.evaluate(predictions, data.labels[task.label].cpu().numpy(),
                             None if groups is None else groups.cpu().numpy())

    # -- loop pieces ----------------------------------------------------------------------------
    def _run_epoch(self, model: nn.Module, task: Task, train: Batch, optimizers: list, state: _State,
                   bar: EpochProgress) -> dict[str, float]:
        model.train()
        torch.manual_seed(self.seed + state.epoch)  # dropout noise per epoch, so a resumed run matches
        n = len(train)
        order = task.order(n, torch.Generator().manual_seed(self.seed + state.epoch), train)
        shuffled = train[order.to(self.device)]  # one gather per epoch; batches are then views
        total, started = torch.zeros((), dtype=torch.float64), time.perf_counter()
        bar.start_epoch(state.epoch + 1, self.max_epochs, n)
        for step, begin in enumerate(range(0, n, self.batch_size)):
            batch = shuffled[begin:begin + self.batch_size]
            loss = task.loss(model(batch), batch)
            auxiliary = getattr(model, "auxiliary_loss", None)  # set by forward, e.g. DIEN's
            if auxiliary is not None:
                loss = loss + auxiliary
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            value = loss.detach()
            if not torch.isfinite(value):
                raise TrainingDivergedError(
                    f"loss became {float(value)} at epoch {state.epoch + 1}, step {step}; lower lr "
                    f"(now {self.lr}) or set grad_clip."
                )
            if state.row_l2 is not None:
                state.row_l2.add_to_gradients()
            if self.grad_clip is not None:
                clip_gradients(model, self.grad_clip)
            for opt in optimizers:
                opt.step()
            total += value * len(batch)
            bar.advance(len(batch), float(value) if step % 20 == 0 else None)
        seconds = time.perf_counter() - started
        return {"epoch": state.epoch + 1, "train_loss": float(total) / n, "lr": optimizers[0].param_groups[0]["lr"],
                "seconds": seconds, "samples_per_s": n / max(seconds, 1e-9)}

    def _after_epoch(self, model: nn.Module, task: Task, optimizers: list, state: _State,
                     row: dict[str, float], *, has_valid: bool) -> bool:
        """Track the best epoch, decay the learning rate on plateaus; True means stop."""
        if not has_valid:
            return False
        score = row[f"valid_{task.monitor}"]
        better = state.best_score is None or (
            score > state.best_score if task.monitor_mode == "max" else score < state.best_score
        )
        if better and not math.isnan(score):
            state.best_score, state.best_epoch = score, state.epoch
            state.bad_epochs = state.plateau_epochs = 0
            state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        state.bad_epochs += 1
        state.plateau_epochs += 1
        if state.plateau_epochs >= self.lr_patience and self.lr_decay < 1:
            state.plateau_epochs = 0
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] *= self.lr_decay
            logger.info("validation %s did not improve; learning rate x%s", task.monitor, self.lr_decay)
        return state.bad_epochs >= self.patience

    # -- checkpoints ----------------------------------------------------------------------------
    def _save(self, model: nn.Module, optimizers: list, state: _State) -> None:
        tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
        if state.best_weights is not None:
            tensors.update({f"best.{k}": v.contiguous() for k, v in state.best_weights.items()})
        if state.row_l2 is not None:
            tensors.update({f"row_l2.{k}": v for k, v in state.row_l2.state_dict().items()})
        plain_opts = []
        for i, opt in enumerate(optimizers):
            opt_tensors, plain = flatten_optimizer(f"optim{i}", opt.state_dict())
            tensors.update(opt_tensors)
            plain_opts.append(plain)
        meta: dict[str, Any] = {
            "epoch": state.epoch, "best_score": state.best_score, "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs, "plateau_epochs": state.plateau_epochs,
            "history": state.history, "optimizers": plain_opts,
        }
        save_checkpoint(Path(self.checkpoint_dir or "."), tensors, meta)

    def _restore(self, model: nn.Module, optimizers: list, state: _State) -> None:
        if self.checkpoint_dir is None:
            raise ConfigError("resume=True needs the Trainer's checkpoint_dir to be set.")
        loaded = load_checkpoint(self.checkpoint_dir)
        if loaded is None:
            logger.info("no checkpoint in %s; starting from scratch", self.checkpoint_dir)
            return
        tensors, meta = loaded
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        state.best_weights = best or None
        for opt, plain in zip(optimizers, meta["optimizers"], strict=True):
            opt.load_state_dict(unflatten_optimizer(plain, tensors))
        state.epoch, state.best_score, state.best_epoch = meta["epoch"], meta["best_score"], meta["best_epoch"]
        state.bad_epochs, state.plateau_epochs = meta["bad_epochs"], meta["plateau_epochs"]
        state.history = meta["history"]
        row_l2 = {k[7:]: v for k, v in tensors.items() if k.startswith("row_l2.")}
        if state.row_l2 is not None and row_l2:  # a run without embedding_l2 saved none
            state.row_l2.load_state_dict(row_l2)

