"""Single-label tasks: each owns a loss, a link function and default metrics; models only return logits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recfunnel.data.batch import Batch
from recfunnel.data.sources import random_order
from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.metrics import get_metric

GROUP = "__group__"  # the label column holding each row's list (a ranking task) or user (a rating model)


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

    def loss_rows(self, logits: Any, batch: Batch) -> int:
        """The number of terms ``loss(logits, batch)`` averages (the batch's rows here): the weight
        of a process's gradient where processes share a batch, so that their step is one process's."""
        return len(batch)

    def link(self, logits: torch.Tensor) -> torch.Tensor:
        """Map logits to predictions (identity here)."""
        return logits

    def evaluate(self, predictions: np.ndarray, targets: np.ndarray,
                 groups: np.ndarray | None = None) -> dict[str, float]:
        """Every metric of the task on link-space predictions (``groups``: see RankingTask)."""
        return {name: float(get_metric(name)[0](targets, predictions)) for name in self.metrics}

    def evaluate_logits(self, logits: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
        """Every metric on a model's logits for rows whose label columns are ``labels``."""
        groups = labels.get(GROUP)
        return self.evaluate(self.link(logits).detach().cpu().numpy(), labels[self.label].cpu().numpy(),
                             None if groups is None else groups.cpu().numpy())

    def summary(self, metrics: dict[str, Any]) -> dict[str, float]:
        """``evaluate``'s metrics as one flat row of numbers, holding ``monitor`` (for the history)."""
        return dict(metrics)

    @property
    def labels(self) -> tuple[str, ...]:
        """The label columns this task reads."""
        return (self.label,)

    def order(self, size: int, generator: torch.Generator, batch: Batch) -> torch.Tensor:
        """The order the Trainer visits training rows in during an epoch: a random permutation,
        except that rows sharing a ``GROUP`` label (a ranking list, a rating model's user) stay
        together: groups in a random order, rows shuffled within each."""
        rows = random_order(size, generator, batch)
        if GROUP not in batch.labels:
            return rows
        group = torch.unique(batch.labels[GROUP].cpu(), return_inverse=True)[1]  # beside the CPU generator's order
        shuffled = torch.randperm(int(group.max()) + 1 if size else 0, generator=generator)
        return rows[torch.argsort(shuffled[group[rows]], stable=True)]

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

    With ``center`` and ``scale`` the model learns the standardized target (y - center) / scale
    and ``link`` maps its output back to the label's units: the loss is then about 1 whatever
    the label's units, as a binary label's log loss is (see ``standardized``).

    Example:
        >>> RegressionTask("rating").loss(torch.tensor([3.0]), Batch({}, {"rating": torch.tensor([5.0])})).item()
        4.0
        >>> RegressionTask("dwell", center=20.0, scale=10.0).link(torch.tensor([0.5])).item()
        25.0
    """

    metrics: tuple[str, ...] = ("rmse", "mae")
    monitor: str = "rmse"
    center: float = 0.0
    scale: float = 1.0
    kind: str = field(default="regression", init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.center) and math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"a regression task's center must be finite and its scale positive; got {self.center!r}, "
                              f"{self.scale!r}.")

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Mean squared error (of the standardized target)."""
        return F.mse_loss(logits, (batch.labels[self.label] - self.center) / self.scale)

    def link(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.scale + self.center if (self.center, self.scale) != (0.0, 1.0) else logits

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "center": self.center, "scale": self.scale}


def standardized(task: Task, values: Any) -> Task:
    """``task``, if a regression task, learning its label standardized by the mean and standard
    deviation of ``values`` (its training values): so that in a multi-task loss a dwell time in
    seconds does not outweigh a click's log loss by its units squared. Other tasks unchanged.

    Example:
        >>> standardized(RegressionTask("dwell"), [10.0, 30.0]).link(torch.tensor([1.0])).item()
        30.0
    """
    if not isinstance(task, RegressionTask):
        return task
    numbers = pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").dropna().to_numpy(np.float64)
    if numbers.size == 0:
        return task
    spread = float(numbers.std())
    return replace(task, center=float(numbers.mean()), scale=spread if spread > 0 else 1.0)


LIST_METRICS = ("recall", "ndcg", "hit", "mrr", "precision")  # what a retriever's full ranking reports at k


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
    metrics: tuple[str, ...] = ("recall@10", "ndcg@10")
    monitor: str = "recall@10"
    kind: str = field(default="retrieval", init=False)

    def __post_init__(self) -> None:
        name, _, depth = str(self.monitor).partition("@")
        if not isinstance(self.monitor, str) or name not in LIST_METRICS or not depth.isdigit() or int(depth) < 1:
            raise ConfigError(f"monitor {self.monitor!r} is not a full-ranking metric; give one of "
                              f"{', '.join(LIST_METRICS)} at a cut-off, e.g. 'recall@10' or 'ndcg@20'.")
        object.__setattr__(self, "monitor", f"{name}@{int(depth)}")  # "recall@010" is "recall@10"

    @property
    def depth(self) -> int:
        """The cut-off of the monitored metric (10 for "recall@10")."""
        return int(self.monitor.partition("@")[2])

    @property
    def monitor_mode(self) -> str:
        """Every full-ranking metric (recall, ndcg, hit, mrr, precision @k) is better larger."""
        return "max"

    def loss_rows(self, logits: Any, batch: Batch) -> int:
        """The scored rows ``loss`` averages (a sequential model's positions, not its users)."""
        return len(logits[0])

    def loss(self, logits, batch: Batch) -> torch.Tensor:  # type: ignore[override]
        """Mean cross-entropy of the target column (softmax over the columns; or, when the logits are
        marked ``binary``, a sigmoid per column summed over the row, the target column positive)."""
        scores, target = logits
        if getattr(logits, "binary", False):
            positive = F.one_hot(target, scores.shape[1]).to(scores.dtype)
            return F.binary_cross_entropy_with_logits(scores, positive, reduction="sum") / max(len(scores), 1)
        return F.cross_entropy(scores, target)


OBJECTIVES = ("pointwise", "pairwise", "listwise")


@dataclass(frozen=True)
class RankingTask(Task):
    """Learning to rank a user's candidate list: rows are (list, candidate) with a 0/1 label
    ("taken next"), and ``batch.labels["__group__"]`` says which list each row belongs to.

    Objectives: "pointwise" (log loss per row), "pairwise" (BPR: every taken candidate above every
    candidate of its list that was not, Rendle et al., UAI 2009) or "listwise" (softmax
    cross-entropy of the taken candidates over their list, Cao et al., ICML 2007). Training
    batches hold whole lists (``order`` keeps them together); NDCG@10 over the validation lists
    is what early stopping watches.

    Example:
        >>> t = RankingTask("taken", objective="listwise")
        >>> b = Batch({}, {"taken": torch.tensor([1., 0., 0., 1.]), GROUP: torch.tensor([0, 0, 1, 1])})
        >>> round(t.loss(torch.zeros(4), b).item(), 4)  # log 2 for each list
        0.6931
    """

    metrics: tuple[str, ...] = ("ndcg@10", "auc")
    monitor: str = "ndcg@10"
    objective: str = "listwise"
    kind: str = field(default="ranking", init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r} is not valid{did_you_mean(self.objective, OBJECTIVES)}; "
                              f"expected one of {list(OBJECTIVES)}.")

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        target = batch.labels[self.label]
        if self.objective == "pointwise" or GROUP not in batch.labels:
            return F.binary_cross_entropy_with_logits(logits, target)
        group = torch.unique(batch.labels[GROUP], return_inverse=True)[1]  # 0..m-1 within the batch
        positive = target > 0.5
        if not positive.any():
            return logits.sum() * 0.0  # no taken candidate here: nothing to rank, keep the graph
        if self.objective == "pairwise":
            same = group[:, None] == group[None, :]
            pairs = same & positive[:, None] & ~positive[None, :]  # (taken i, not taken j) of one list
            if not pairs.any():
                return logits.sum() * 0.0
            return F.softplus(logits[None, :] - logits[:, None])[pairs].mean()  # -log σ(s_i - s_j)
        lists = int(group.max()) + 1
        top = logits.new_full((lists,), -torch.inf).scatter_reduce(0, group, logits.detach(), "amax")
        total = logits.new_zeros(lists).index_add(0, group, torch.exp(logits - top[group]))
        log_norm = torch.log(total) + top  # logsumexp of each list
        return (log_norm[group] - logits)[positive].mean()

    def loss_rows(self, logits: Any, batch: Batch) -> int:
        """The terms ``loss`` averages: rows (pointwise), the batch's (taken, not taken) pairs of
        one list (pairwise), or its taken rows (listwise).

        Example:
            >>> b = Batch({}, {"taken": torch.tensor([1., 0., 0., 1., 0.]), GROUP: torch.tensor([0, 0, 0, 1, 1])})
            >>> [RankingTask("taken", objective=o).loss_rows(None, b) for o in OBJECTIVES]
            [5, 3, 2]
        """
        if self.objective == "pointwise" or GROUP not in batch.labels:
            return len(batch)
        positive = batch.labels[self.label] > 0.5
        if self.objective == "listwise":
            return int(positive.sum())
        group = torch.unique(batch.labels[GROUP], return_inverse=True)[1]
        lists = torch.bincount(group)
        taken = torch.bincount(group[positive], minlength=len(lists))
        return int((taken * (lists - taken)).sum())

    def link(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid: a score in (0, 1), ordered as the logits are (a probability for "pointwise")."""
        return torch.sigmoid(logits)

    def evaluate(self, predictions: np.ndarray, targets: np.ndarray,
                 groups: np.ndarray | None = None) -> dict[str, float]:
        out = {}
        for name in self.metrics:
            fn = get_metric(name)[0]
            out[name] = float(fn(targets, predictions, groups) if name == "ndcg@10" else fn(targets, predictions))
        return out

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "objective": self.objective}


TASKS = {"binary": BinaryTask, "regression": RegressionTask, "ranking": RankingTask}


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


def single_task_from_dict(data: dict) -> Task:
    """Rebuild a task from ``Task.to_dict`` output."""
    cls = TASKS.get(data.get("kind", ""))
    if cls is None:
        raise ConfigError(f"unknown task kind {data.get('kind')!r}; expected one of {list(TASKS)}.")
    extra: dict = {"negative_rate": float(data["negative_rate"])} if "negative_rate" in data and cls is BinaryTask \
        else {}
    if cls is RankingTask:
        extra = {"objective": str(data.get("objective", "listwise"))}
    if cls is RegressionTask:
        extra = {"center": float(data.get("center", 0.0)), "scale": float(data.get("scale", 1.0))}
    return cls(data["label"], tuple(data["metrics"]), data["monitor"], **extra)


