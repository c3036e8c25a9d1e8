"""What every rating model shares: (user, item, rating) training rows, a global mean, clipped predictions.

A rating model is a retrieval model whose score is the predicted rating: trained by the Trainer
with a ``RegressionTask`` on the rating column (the Retriever's ``label``), it predicts the rating
of (user, item) pairs (``predict``, clipped to the training range, for RMSE and MAE) and ranks the
catalogue by the same prediction (``score``), so it can also serve top-k lists. A user or item
unseen in training contributes nothing of its own: its prediction falls back to the global mean
plus whatever is known about the other side.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import Interactions, to_codes
from recfunnel.errors import DataError
from recfunnel.models.retrieval.base import RetrievalModule
from recfunnel.schema import Schema
from recfunnel.tasks import GROUP, RegressionTask, RetrievalTask, Task

RATING = "rating"  # the label name of a rating model's training rows


class RatingModel(RetrievalModule):
    """Base of rating models: ``forward(batch)`` gives (B,) unclipped ratings of the batch's
    ``user`` and ``item`` codes; subclasses implement it and the vector hooks.

    Class attributes:
        groups: "user" or "item": training rows come grouped by that side (a group's rows together
            in a batch, seldom split across two), for models that compute something once per user
            or item in a step (AutoRec's item codes); None shuffles the rows freely.
        ranks_without_label: Without a rating column the model learns from the interactions
            themselves and ranks the catalogue like a retrieval model (NeuMF); the Retriever then
            sets ``explicit`` False. Other rating models need the rating column.
        caches: Attributes holding tensors built from the training data (a tuple of tensors, or an
            object with ``to(device)``), which move with the model as its buffers do (``.to``,
            ``.cpu``) but are not saved.
    """

    predicts_ratings: ClassVar[bool] = True
    groups: ClassVar[str | None] = None
    ranks_without_label: ClassVar[bool] = False
    caches: ClassVar[tuple[str, ...]] = ()
    # chosen on a random 70/10/20 split of MovieLens 100K (BENCHMARKS.md): element-wise Adagrad on
    # the tables at 0.1 with batches of 4096 reaches its best RMSE by epoch 15-20 and stays there
    trainer_defaults: ClassVar[dict[str, Any]] = {"batch_size": 4096, "max_epochs": 20,
                                                  "sparse_optimizer": "adagrad", "sparse_lr": 0.1}

    def __init__(self, schema: Schema) -> None:
        super().__init__(schema)
        self.mean: torch.Tensor
        self.bounds: torch.Tensor
        self.register_buffer("mean", torch.zeros(()))
        big = torch.finfo(torch.float32).max  # no clipping before training sets the range (finite: saved weights must be)
        self.register_buffer("bounds", torch.tensor([-big, big]))
        self.explicit = True  # trained on a rating column (False: on the interactions, see ranks_without_label)

    def _apply(self, fn: Any, recurse: bool = True) -> RatingModel:
        super()._apply(fn, recurse)  # parameters and buffers
        first = next(iter(self.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        for name in self.caches:
            value = getattr(self, name)
            if isinstance(value, tuple):
                setattr(self, name, tuple(t.to(device) for t in value))
            elif value is not None:
                setattr(self, name, value.to(device))
        return self

    def training_task(self, monitor: str) -> Task:
        return RegressionTask(RATING, monitor=monitor) if self.explicit else RetrievalTask(monitor=monitor)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """(user, item) codes and their ratings; the global mean and the rating range are kept."""
        known = data.known()
        if known.weights is None:
            raise DataError("a rating model needs each interaction's rating: name its column with --label "
                            "(Retriever(..., label='rating')).")
        ratings = torch.from_numpy(known.weights.astype(np.float32))
        self.mean.fill_(float(ratings.mean()))
        self.bounds.copy_(torch.stack([ratings.min(), ratings.max()]))
        labels = {RATING: ratings}
        if self.groups is not None:  # the task's order then keeps each group's rows together
            labels[GROUP] = torch.from_numpy(known.users if self.groups == "user" else known.items)
        return Batch({"user": to_codes(known.users), "item": to_codes(known.items)}, labels)

    def predict(self, batch: Batch) -> torch.Tensor:
        """(B,) ratings of the batch's (user, item) codes, clipped to the training range."""
        return self(batch).clamp(float(self.bounds[0]), float(self.bounds[1]))
