"""Trainer: the one training loop for every gradient-trained model."""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.checks import plain
from recfunnel.data.sources import BatchSource, InMemory
from recfunnel.errors import ConfigError, DataError, TrainingDivergedError
from recfunnel.models.base import split_output
from recfunnel.tasks import MultiTask, Task
from recfunnel.train import distributed
from recfunnel.train.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar, ReduceLROnPlateau, Run
from recfunnel.train.checkpoint import restore_run
from recfunnel.train.optim import LazyRowL2, build_optimizers, clip_gradients, split_parameters

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What ``Trainer.fit`` learned about the run: one dict per epoch, and the best epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float | None = None
    stopped_early: bool = False


def _is_number(value: Any) -> bool:
    """An int or float, and not a bool (``true`` in a YAML config is not a learning rate)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: A validation the Trainer cannot compute from a Batch: the model in, its metrics (by name) out.
Validation = Callable[[nn.Module], dict[str, float]]


class Trainer:
    """Fits a model on a task: shuffled mini-batches, sparse embedding updates, early stopping.

    The policies around the loop are callbacks (``recfunnel.train.callbacks``): early stopping with
    best-weight restore, learning-rate decay on plateaus, checkpoints and the progress bar come from
    the options below; ``fit(..., callbacks=[...])`` adds a caller's own. A model whose
    training-mode forward returns a ``ModelOutput`` gets its ``auxiliary_loss`` added to the task
    loss (DIEN's next-behaviour loss).

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
        shuffle: Visit training rows in a seeded random order each epoch; False keeps their order
            (a BatchSource passed to ``fit`` shuffles, or not, itself).

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
                 progress: bool | None = None, shuffle: bool = True) -> None:
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
        self.grad_clip, self.seed, self.device = grad_clip, seed, _device_named(device)
        self.eval_batch_size = eval_batch_size
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.progress = progress
        if not isinstance(shuffle, bool):
            raise ConfigError(f"trainer option shuffle must be true or false; got {shuffle!r}.")
        self.shuffle = shuffle

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

    def fit(self, model: nn.Module, task: Task | MultiTask, train: Batch | BatchSource,
            valid: Batch | Validation | None = None, *, resume: bool = False,
            callbacks: Sequence[Callback] = ()) -> TrainResult:
        """Train ``model`` in place on ``train``: a Batch (shuffled in memory) or a BatchSource
        (e.g. a ``BlockStream`` of encoded blocks).

        ``valid`` is a labelled Batch scored by the task's metrics, or a function of the model
        returning its metrics (a retriever's full-ranking recall@k: what a batch of rows cannot
        say); early stopping watches the task's ``monitor`` among them and restores the best
        epoch's weights at the end. ``callbacks``
        run after the Trainer's own (early stopping, learning-rate decay, checkpoints, progress);
        any of them ends training by setting ``run.stop``.
        """
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"trainer device {str(self.device)!r}, but this machine has no CUDA GPU that PyTorch "
                              "can use (none, or a CPU build of PyTorch); train with trainer.device=cpu.")
        source = self._source(train, task)
        if source.num_rows == 0:
            raise DataError("the training data has no rows.")
        model.to(self._device())
        if distributed.active():  # one of several processes: equal weights, a share of each batch
            distributed.broadcast_parameters(model)
        optimizers = build_optimizers(model, lr=self.lr, sparse_lr=self.sparse_lr,
                                      weight_decay=self.weight_decay, sparse_optimizer=self.sparse_optimizer)
        run = Run(self, model, task, optimizers, has_valid=valid is not None, num_rows=source.num_rows,
                  row_l2=LazyRowL2(split_parameters(model)[1], self.embedding_l2) if self.embedding_l2 else None)
        if resume:
            self._restore(run)
        hooks = [*self._callbacks(valid is not None), *callbacks]
        device = self._device()  # the loop reseeds; the caller's random state, CUDA's too, is kept
        gpus = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=gpus), warnings.catch_warnings():
            # torch's sparse optimizers build COO tensors without invariant checks and warn on
            # every call; the tensors come from autograd and are valid, so the warning is noise.
            warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
            try:
                for hook in hooks:
                    hook.on_fit_start(run)
                while run.epoch < self.max_epochs and not run.stop:
                    for hook in hooks:
                        hook.on_epoch_start(run)
                    row = self._run_epoch(run, source, hooks)
                    if valid is not None:
                        metrics = task.summary(self.validate(model, task, valid)) if isinstance(valid, Batch) \
                            else valid(model)
                        if task.monitor not in metrics:  # else early stopping would silently never act
                            raise ConfigError(f"validation gave {sorted(metrics)}, not the monitored metric "
                                              f"{task.monitor!r}; return it, or monitor one of these.")
                        row.update({f"valid_{k}": plain(v) for k, v in metrics.items()})
                    run.history.append(row)
                    run.epoch += 1
                    for hook in hooks:
                        hook.on_epoch_end(run, row)
                    if distributed.active():
                        run.stop = distributed.follow_rank_zero(run.stop, run.optimizers)
            finally:
                for hook in hooks:
                    hook.on_fit_end(run)
        return TrainResult(run.history, run.best_epoch, run.best_score, run.epoch < self.max_epochs)

    @torch.inference_mode()
    def predict(self, model: nn.Module, data: Batch) -> Any:
        """Logits for every row of ``data``, in chunks of ``eval_batch_size``: (N,), or
        ``{label: (N,)}`` for a multi-task model."""
        was_training = model.training
        model.eval()
        where = next((p.device for p in model.parameters()), self._device())  # the model's: after fit, the CPU
        try:
            chunks = [split_output(model(data[start:start + self.eval_batch_size].to(where)))[0]
                      for start in range(0, len(data), self.eval_batch_size)]
        finally:
            model.train(was_training)
        if chunks and isinstance(chunks[0], dict):
            return {label: torch.cat([c[label].float().cpu() for c in chunks]) for label in chunks[0]}
        return torch.cat([c.float().cpu() for c in chunks]) if chunks else torch.empty(0)

    def evaluate(self, model: nn.Module, task: Task | MultiTask, data: Batch) -> dict[str, Any]:
        """The task's metrics on ``data`` (keyed by label, then metric, for several labels)."""
        return task.evaluate_logits(self.predict(model, data), data.labels)

    def validate(self, model: nn.Module, task: Task | MultiTask, valid: Batch) -> dict[str, Any]:
        """``evaluate`` of the validation rows, which every process holds: in a run of several
        processes each scores its share of the rows and every one computes the metrics over all of
        them, so every process must call it."""
        if not distributed.active() or len(valid) < distributed.world()[1]:  # (every share holds a row)
            return self.evaluate(model, task, valid)
        logits = distributed.gather_rows(self.predict(model, valid[distributed.my_rows(len(valid))]), len(valid))
        return task.evaluate_logits(logits, valid.labels)

    # -- loop pieces ----------------------------------------------------------------------------
    def _device(self) -> torch.device:
        """Where this process computes: ``device``, or its own GPU in a CUDA run of several processes."""
        return distributed.process_device(self.device)

    def _source(self, train: Batch | BatchSource, task: Task | MultiTask) -> BatchSource:
        rank, size = distributed.world()
        if isinstance(train, Batch):
            if size > 1:
                return distributed.Sharded(train.to(self._device()), rank=rank, size=size, shuffle=self.shuffle)
            return InMemory(train.to(self._device()), shuffle=self.shuffle)
        if size > 1 and not isinstance(train, distributed.StreamShare):
            raise ConfigError(f"training across processes reads one Batch, shared out, or a StreamShare of each "
                              f"process's own parts (Ranker.fit on a Stream does this); got a {type(train).__name__}.")
        if not isinstance(train, BatchSource):
            raise ConfigError(f"train must be a Batch or a BatchSource (InMemory, BlockStream); got "
                              f"{type(train).__name__}.")
        return train

    def _callbacks(self, has_valid: bool) -> list[Callback]:
        hooks: list[Callback] = []
        if has_valid:
            hooks += [EarlyStopping(self.patience), ReduceLROnPlateau(self.lr_decay, self.lr_patience)]
        if self.checkpoint_dir is not None and distributed.is_main():  # one writer
            hooks.append(Checkpoint(self.checkpoint_dir))
        return [*hooks, ProgressBar(self.progress if distributed.is_main() else False)]

    def _run_epoch(self, run: Run, source: BatchSource, hooks: list[Callback]) -> dict[str, float]:
        model, task = run.model, run.task
        model.train()
        torch.manual_seed(self.seed + run.epoch)  # dropout noise per epoch, so a resumed run matches
        device = self._device()
        total, rows, started = torch.zeros((), dtype=torch.float64, device=device), 0, time.perf_counter()
        shared = split_parameters(model) if distributed.active() else None  # (dense, tables) to sum over ranks
        for step, batch in enumerate(source.batches(self.batch_size, epoch=run.epoch, seed=self.seed, order=task.order)):
            batch = batch.to(device)
            for opt in run.optimizers:
                opt.zero_grad(set_to_none=True)
            weight = 0  # the terms this step's loss averages, to weigh it against other processes'
            if len(batch):
                logits, auxiliary = split_output(model(batch))
                loss = task.loss(logits, batch)
                if shared is not None:  # a model's own term (an L2 penalty, DIEN's auxiliary loss) goes by rows
                    weight = task.loss_rows(logits, batch) if auxiliary is None else len(batch)
                if auxiliary is not None:
                    loss = loss + auxiliary
                loss.backward()
            else:  # this process's share of a last batch smaller than the processes: it still takes part
                loss = total.new_zeros(())
            value, taken = loss.detach(), len(batch)
            if shared is not None:  # the whole batch's loss and rows come back with the gradients
                value, whole = distributed.sync_gradients(*shared, weight, loss=(value, taken))
                taken = int(whole)
            if not torch.isfinite(value):
                raise TrainingDivergedError(
                    f"loss became {float(value)} at epoch {run.epoch + 1}, step {step}; lower lr "
                    f"(now {self.lr}) or set grad_clip."
                )
            if run.row_l2 is not None:
                run.row_l2.add_to_gradients()
            if self.grad_clip is not None:
                clip_gradients(model, self.grad_clip)
            for opt in run.optimizers:
                opt.step()
            total += value * taken
            rows += taken
            run.step_rows = taken  # the progress bar counts every process's rows
            for hook in hooks:
                hook.on_batch_end(run, batch, value)
        if rows == 0:
            raise DataError("the training data has no rows.")
        seconds = time.perf_counter() - started
        return {"epoch": run.epoch + 1, "train_loss": float(total) / rows, "lr": run.optimizers[0].param_groups[0]["lr"],
                "seconds": seconds, "samples_per_s": rows / max(seconds, 1e-9)}

    # -- checkpoints ----------------------------------------------------------------------------
    def _restore(self, run: Run) -> None:
        if self.checkpoint_dir is None:
            raise ConfigError("resume=True needs the Trainer's checkpoint_dir to be set.")
        if not restore_run(self.checkpoint_dir, run):
            logger.info("no checkpoint in %s; starting from scratch", self.checkpoint_dir)


def _device_named(device: Any) -> torch.device:
    """``device`` as a torch device.

    Raises:
        ConfigError: PyTorch knows no such device.
    """
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"trainer device {device!r} is not a device PyTorch knows; use 'cpu', 'cuda' or "
                          "'cuda:N'.") from None
