"""MultiTask: several labels trained at once, each with its own task, loss weight and row mask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from recfunnel.data.batch import Batch
from recfunnel.data.sources import random_order
from recfunnel.errors import ConfigError
from recfunnel.tasks.base import Task, single_task_from_dict


class MultiTask:
    """A task per label; the loss is the weighted sum of theirs, each over the rows its mask keeps.

    The model returns ``{label: logits (B,)}``. A mask names another label whose positive rows are
    the only ones a label's loss sees: ``masks={"purchase": "click"}`` trains a conversion head on
    clicked rows only (the sample-selection setting ESMM is about). Every label is evaluated on all
    of its rows. Early stopping watches the mean of the labels' monitored metric when they share one
    (``mean_auc``), else the first label's (``click_auc``).

    Args:
        tasks: One single-label task per label, in the order the model's heads were built.
        weights: Loss weight per label; 1 each by default.
        masks: ``{label: mask_label}``: that label's loss counts rows where ``mask_label`` is 1 only.

    Example:
        >>> from recfunnel.tasks import BinaryTask
        >>> task = MultiTask([BinaryTask("click"), BinaryTask("buy")], masks={"buy": "click"})
        >>> b = Batch({}, {"click": torch.tensor([1., 0.]), "buy": torch.tensor([1., 0.])})
        >>> round(task.loss({"click": torch.zeros(2), "buy": torch.zeros(2)}, b).item(), 4)  # log 2, twice
        1.3863
        >>> task.monitor
        'mean_auc'
    """

    kind = "multitask"

    def __init__(self, tasks: Sequence[Task], *, weights: Mapping[str, float] | None = None,
                 masks: Mapping[str, str] | None = None) -> None:
        self.tasks = tuple(tasks)
        names = [t.label for t in self.tasks]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConfigError(f"a MultiTask needs two or more different labels; got {names!r}.")
        self.weights = {name: 1.0 for name in names} | dict(weights or {})
        self.masks = dict(masks or {})
        for name, value in self.weights.items():
            if name not in names or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"loss weight {name!r}: {value!r} must name a label of {names} and be a number >= 0.")
        for name, mask in self.masks.items():
            if name not in names or mask not in names or mask == name:
                raise ConfigError(f"mask {name!r}: {mask!r} must map a label to another label of {names}.")
        monitors = {t.monitor for t in self.tasks}
        self.monitor = f"mean_{self.tasks[0].monitor}" if len(monitors) == 1 else f"{names[0]}_{self.tasks[0].monitor}"
        self.monitor_mode = self.tasks[0].monitor_mode

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.label for t in self.tasks)

    def _check_heads(self, logits: Any) -> None:
        if not isinstance(logits, dict) or set(self.labels) - set(logits):
            got = sorted(logits) if isinstance(logits, dict) else f"one {type(logits).__name__}"
            raise ConfigError(f"a MultiTask over {list(self.labels)} needs a model returning {{label: logits}} for "
                              f"each; got {got}. Train a multi-task model (e.g. shared_bottom).")

    def loss(self, logits: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        self._check_heads(logits)
        total = torch.zeros((), dtype=torch.float32, device=next(iter(logits.values())).device)
        for task in self.tasks:
            weight, own = self.weights[task.label], logits[task.label]
            if weight == 0:
                continue
            mask = self.masks.get(task.label)
            if mask is None:
                total = total + weight * task.loss(own, batch)
                continue
            keep = batch.labels[mask] > 0.5
            if keep.any():  # a batch with no row of the mask adds nothing, and keeps the graph
                total = total + weight * task.loss(own[keep], Batch({}, {task.label: batch.labels[task.label][keep]}))
            else:
                total = total + own.sum() * 0.0
        return total

    def loss_rows(self, logits: Any, batch: Batch) -> int:
        """The batch's rows: the weight of a process's gradient where processes share a batch (a
        masked task's rows are fewer, so the step comes close to one process's, not exactly)."""
        return len(batch)

    def link(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t.label: t.link(logits[t.label]) for t in self.tasks}

    def evaluate_logits(self, logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``{label: {metric: value}}`` over all rows."""
        return {t.label: t.evaluate_logits(logits[t.label], labels) for t in self.tasks}

    def summary(self, metrics: dict[str, Any]) -> dict[str, float]:
        """``{label}_{metric}`` for every label and metric, and the monitored mean."""
        row = {f"{label}_{name}": value for label, values in metrics.items() for name, value in values.items()}
        if self.monitor.startswith("mean_"):
            name = self.monitor[5:]
            row[self.monitor] = sum(metrics[t.label][name] for t in self.tasks) / len(self.tasks)
        return row

    def order(self, size: int, generator: torch.Generator, batch: Batch) -> torch.Tensor:
        return random_order(size, generator, batch)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "tasks": [t.to_dict() for t in self.tasks], "weights": self.weights,
                "masks": self.masks}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiTask:
        return cls([single_task_from_dict(t) for t in data["tasks"]], weights=data.get("weights"),
                   masks=data.get("masks"))
