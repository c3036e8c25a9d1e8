"""Logistic regression over one-hot ids and numeric values."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import LinearTerm
from recfunnel.schema import Schema


@register_model("lr", kind="ranking")
class LR(RankingModel):
    """Logistic regression: a bias plus one weight per id value and per numeric feature.

    Args:
        schema: Input features (from a fitted schema).

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> LR(toy_schema())(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    # One weight per id: lazy Adam at 0.01 with a light L2 beats the ranking defaults' Adagrad on
    # validation on Frappe and MovieLens 100K (BENCHMARKS.md, "Defaults against the peers' defaults").
    trainer_defaults = {**RankingModel.trainer_defaults, "sparse_optimizer": "adam", "sparse_lr": 0.01,
                        "embedding_l2": 1e-5}

    def __init__(self, schema: Schema) -> None:
        super().__init__(schema)
        self.linear = LinearTerm(schema.inputs)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        return self.linear(batch.features)
