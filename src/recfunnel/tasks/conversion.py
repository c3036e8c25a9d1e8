"""ConversionTask: click and post-click conversion learnt over every impression, as ESMM does."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from recfunnel.errors import ConfigError
from recfunnel.tasks.base import BinaryTask, Task
from recfunnel.tasks.multitask import MultiTask

CTCVR = "ctcvr"  # the metrics key of the product pCTR x pCVR against click AND conversion


def log_product(click_logits: torch.Tensor, conversion_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p, log(1 - p)) of p = sigmoid(a) * sigmoid(b), computed without forming p.

    Example:
        >>> log_p, log_q = log_product(torch.tensor([0.0]), torch.tensor([0.0]))
        >>> round(log_p.exp().item(), 4), round(log_q.exp().item(), 4)
        (0.25, 0.75)
    """
    log_p = F.logsigmoid(click_logits) + F.logsigmoid(conversion_logits)
    # log(1 - e^x) for x < 0: expm1 near 0, log1p far from it (Mächler's log1mexp); each branch
    # gets only inputs it is finite on, so the other's gradient is 0 rather than NaN
    near = log_p > -0.6931
    close = torch.where(near, log_p, torch.full_like(log_p, -1.0)).clamp_max(-1e-7)
    far = torch.where(near, torch.full_like(log_p, -1.0), log_p)
    log_q = torch.where(near, torch.log(-torch.expm1(close)), torch.log1p(-torch.exp(far)))
    return log_p, log_q


class ConversionTask(MultiTask):
    """Two binary labels, a click and a conversion that only follows a click (a purchase, say),
    trained the ESMM way (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018): the model's
    second head is the post-click conversion rate pCVR, but its loss is on pCTCVR = pCTR x pCVR
    against "clicked and converted" over every impression, so the conversion head learns from the
    whole impression space rather than from clicked rows alone (the sample-selection bias of
    training it on clicks). The click head has its own log loss over every row.

    ``link`` gives pCTR and pCVR; ``evaluate_logits`` reports the click over every row, the
    conversion (pCVR) over the clicked rows, and ``ctcvr``, the product against click AND
    conversion over every row.

    Example:
        >>> from recfunnel.data.batch import Batch
        >>> task = ConversionTask([BinaryTask("click"), BinaryTask("buy")])
        >>> b = Batch({}, {"click": torch.tensor([1., 0.]), "buy": torch.tensor([1., 0.])})
        >>> round(task.loss({"click": torch.zeros(2), "buy": torch.zeros(2)}, b).item(), 4)  # log 2 + (-log .25 - log .75) / 2
        1.5301
    """

    kind = "conversion"

    def __init__(self, tasks: Any, *, weights: Any = None, masks: Any = None) -> None:
        super().__init__(tasks, weights=weights, masks=masks)
        if len(self.tasks) != 2 or not all(isinstance(t, BinaryTask) for t in self.tasks):
            raise ConfigError(f"a conversion model trains two binary labels, the click then the conversion "
                              f"(label='click,purchase'); got {[t.label for t in self.tasks]}.")
        if self.masks:
            raise ConfigError("a conversion task learns the conversion over every impression; it takes no masks.")

    def loss(self, logits: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
        click, conversion = self.labels
        self._check_heads(logits)
        clicked = batch.labels[click].float()
        both = clicked * batch.labels[conversion].float()  # a conversion without a click counts as none
        log_p, log_q = log_product(logits[click], logits[conversion])
        ctcvr = -(both * log_p + (1.0 - both) * log_q).mean()
        return self.weights[click] * self.tasks[0].loss(logits[click], batch) + self.weights[conversion] * ctcvr

    def evaluate_logits(self, logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> dict[str, Any]:
        click, conversion = self.labels
        clicked = labels[click] > 0.5
        both = (clicked & (labels[conversion] > 0.5)).float()
        log_p, _ = log_product(logits[click], logits[conversion])
        return {click: self.tasks[0].evaluate_logits(logits[click], labels),
                conversion: self.tasks[1].evaluate_logits(logits[conversion][clicked],
                                                          {conversion: labels[conversion][clicked]}),
                CTCVR: _probabilities_report(self.tasks[1], log_p.exp(), both)}

    def summary(self, metrics: dict[str, Any]) -> dict[str, float]:
        row = super().summary({label: metrics[label] for label in self.labels})
        return row | {f"{CTCVR}_{name}": value for name, value in metrics[CTCVR].items()}


def _probabilities_report(task: Task, probabilities: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """A binary task's metrics of probabilities (not logits) against 0/1 targets."""
    return task.evaluate(probabilities.detach().cpu().numpy(), targets.cpu().numpy())
