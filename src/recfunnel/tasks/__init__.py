"""Tasks own the loss, the link function and the default metrics; models only return logits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.metrics import get_metric


@dataclass(frozen=True)
class Task:
    """Base task: one label column, a loss on logits, a link to predictions, metrics on predictions.

    Args:
        label: Name of the label column.
        metrics: Metric names reported on validation and test data.
        monitor: The metric early stopping and learning-rate decay watch.
    """

    label: str
    metrics: tuple[str, ...] = ()
    monitor: str = ""
    kind: str = field(default="", init=False)

    def __post_init__(self) -> None:
        for name in self.metrics:
            get_metric(name)
        if self.monitor not in self.metrics:
            raise ConfigError(
                f"monitor {self.monitor!r} must be one of the task's metrics {list(self.metrics)}."
            )

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement loss(logits, batch)")

    def link(self, logits: torch.Tensor) -> torch.Tensor:
        """Map logits to predictions (identity here)."""
        return logits

    def evaluate(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Every metric of the task on link-space predictions."""
        return {name: float(get_metric(name)[0](targets, predictions)) for name in self.metrics}

    @property
    def monitor_mode(self) -> str:
        """"max" if a larger monitored value is better, else "min"."""
        return get_metric(self.monitor)[1]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description, the inverse of ``task_from_dict``."""
        return {"kind": self.kind, "label": self.label, "metrics": list(self.metrics), "monitor": self.monitor}


@dataclass(frozen=True)
class BinaryTask(Task):
    """Binary classification (click / no click): log loss on logits, sigmoid link, AUC and log loss.

    Example:
        >>> t = BinaryTask("click")
        >>> b = Batch({}, {"click": torch.tensor([1.0, 0.0])})
        >>> round(t.loss(torch.tensor([0.0, 0.0]), b).item(), 4)
        0.6931
    """

    metrics: tuple[str, ...] = ("auc", "logloss")
    monitor: str = "auc"
    negative_rate: float = 1.0
    kind: str = field(default="binary", init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.negative_rate <= 1.0:
            raise ConfigError(f"negative_rate must be in (0, 1] (the share of negatives kept); got {self.negative_rate!r}.")

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean binary cross-entropy (on the training rows as sampled)."""
        return F.binary_cross_entropy_with_logits(logits, batch.labels[self.label])

    def link(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid, calibrated for negative down-sampling: a model trained on all positives and a
        share w of the negatives predicts p; the probability on unsampled data is
        q = p / (p + (1 - p) / w), which is sigmoid(logit + log w) (He et al., ADKDD 2014)."""
        if self.negative_rate != 1.0:
            logits = logits + math.log(self.negative_rate)
        return torch.sigmoid(logits)

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "negative_rate": self.negative_rate}


@dataclass(frozen=True)
class RegressionTask(Task):
    """Real-valued target: mean squared error, identity link, RMSE and MAE.

    Example:
        >>> RegressionTask("rating").loss(torch.tensor([3.0]), Batch({}, {"rating": torch.tensor([5.0])})).item()
        4.0
    """

    metrics: tuple[str, ...] = ("rmse", "mae")
    monitor: str = "rmse"
    kind: str = field(default="regression", init=False)

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean squared error."""
        return F.mse_loss(logits, batch.labels[self.label])


@dataclass(frozen=True)
class RetrievalTask(Task):
    """Sampled softmax for retrieval: cross-entropy of each row's target among its candidates.

    The model's forward returns ``(logits (B, C), target (B,))``, already holding any
    temperature, log-Q correction and masking; ranking metrics are computed by the Retriever
    over the whole catalogue, not per batch, so this task has none.

    Example:
        >>> round(RetrievalTask().loss((torch.zeros(2, 4), torch.tensor([0, 3])), Batch({})).item(), 4)  # log 4
        1.3863
    """

    label: str = ""
    kind: str = field(default="retrieval", init=False)

    def __post_init__(self) -> None:
        pass

    def loss(self, logits, batch: Batch) -> torch.Tensor:  # type: ignore[override]
        """Mean cross-entropy of the target column."""
        scores, target = logits
        return F.cross_entropy(scores, target)


TASKS = {"binary": BinaryTask, "regression": RegressionTask}


def task_for_label(label: str, kind: str, *, monitor: str | None = None, negative_rate: float = 1.0) -> Task:
    """The task of a label kind ("binary" or "regression"), optionally watching another metric;
    ``negative_rate`` < 1 calibrates a binary task trained on down-sampled negatives."""
    if kind not in TASKS:
        raise ConfigError(f"no task for label kind {kind!r}; expected one of {list(TASKS)}.")
    if negative_rate != 1.0 and kind != "binary":
        raise ConfigError(f"negative down-sampling needs a binary label; {label!r} is a {kind} label.")
    extra = {"negative_rate": negative_rate} if kind == "binary" else {}
    task = TASKS[kind](label, **extra)
    if monitor is None:
        return task
    if monitor not in task.metrics:
        raise ConfigError(
            f"monitor={monitor!r} is not a metric of a {kind} task{did_you_mean(monitor, task.metrics)}; "
            f"valid: {list(task.metrics)}."
        )
    return TASKS[kind](label, task.metrics, monitor, **extra)


def task_from_dict(data: dict) -> Task:
    """Rebuild a task from ``Task.to_dict`` output."""
    cls = TASKS.get(data.get("kind", ""))
    if cls is None:
        raise ConfigError(f"unknown task kind {data.get('kind')!r}; expected one of {list(TASKS)}.")
    extra = {"negative_rate": float(data["negative_rate"])} if "negative_rate" in data and cls is BinaryTask else {}
    return cls(data["label"], tuple(data["metrics"]), data["monitor"], **extra)


__all__ = ["Task", "BinaryTask", "RegressionTask", "RetrievalTask", "task_for_label", "task_from_dict"]
