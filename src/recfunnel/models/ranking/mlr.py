"""MLR: a softmax gate over regions of the feature space, a logistic regression in each."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError
from recfunnel.models.base import ModelOutput, RankingModel, register_model
from recfunnel.nn import FeatureEmbedding
from recfunnel.schema import Schema


@register_model("mlr", kind="ranking")
class MLR(RankingModel):
    """Mixed logistic regression (LS-PLM) of Gai, Zhu, Li, Liu & Wang, "Learning Piece-wise Linear
    Models from Large Scale Data for Ad Click Prediction", arXiv:1704.05194 (Alibaba, 2017):
    p(y=1|x) = Σ_i softmax(u · x)_i · σ(w_i · x) over ``regions`` pieces, each id and numeric
    feature holding 2·regions weights (its gate weights and its LR weights). One region is
    logistic regression. The paper's sparsity terms, L2,1 (a feature's 2·regions weights as one
    group) and L1, are applied to the weights a batch uses, per use, with ``l21`` and ``l1``.

    Args:
        schema: Input features (from a fitted schema).
        regions: m, the number of pieces.
        l21: Weight of the group norm ||θ_feature||_2 of each used feature's weights.
        l1: Weight of the L1 norm of each used feature's weights.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> MLR(toy_schema(), regions=4).eval()(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    # one weight row per id, as LR: the same optimizer choice (BENCHMARKS.md, "Defaults against the
    # peers' defaults: ranking")
    trainer_defaults = {**RankingModel.trainer_defaults, "sparse_optimizer": "adam", "sparse_lr": 0.01}

    def __init__(self, schema: Schema, *, regions: int = 12, l21: float = 1e-5, l1: float = 0.0) -> None:
        super().__init__(schema)
        if regions < 1 or l21 < 0 or l1 < 0:
            raise ConfigError(f"mlr needs regions >= 1 and l21, l1 >= 0; got {regions!r}, {l21!r}, {l1!r}.")
        self.regions, self.l21, self.l1 = regions, l21, l1
        self.weights = FeatureEmbedding(schema.inputs, 2 * regions)  # [gate u_i | LR w_i] per feature
        self.bias = nn.Parameter(torch.zeros(2 * regions))

    def forward(self, batch: Batch) -> Any:
        """(B,) logits of p = Σ_i gate_i σ(LR_i); in training with the sparsity terms as a ModelOutput."""
        fields = self.weights(batch.features)                     # (B, F, 2m)
        gate, linear = (fields.sum(1) + self.bias).split(self.regions, dim=1)
        log_gate = F.log_softmax(gate, dim=1)
        # logit p = log p - log(1 - p), each a log-sum-exp over the regions (σ(-z) = 1 - σ(z))
        logits = torch.logsumexp(log_gate + F.logsigmoid(linear), 1) - torch.logsumexp(log_gate + F.logsigmoid(-linear), 1)
        if not self.training or not (self.l21 or self.l1):
            return logits
        penalty = self.l21 * fields.norm(dim=2).sum(1).mean() + self.l1 * fields.abs().sum((1, 2)).mean()
        return ModelOutput(logits, penalty)
