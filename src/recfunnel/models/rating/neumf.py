"""NeuMF: a generalised matrix factorisation and an MLP over (user, item) embeddings, fused."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import FIRST_CODE, History, Interactions, to_codes
from recfunnel.errors import ConfigError
from recfunnel.models.base import ModelOutput, register_model
from recfunnel.models.rating.base import RatingModel
from recfunnel.models.rating.svd import factor_table
from recfunnel.models.retrieval.base import SampledLogits
from recfunnel.schema import Schema

PAIRS_PER_CHUNK = 1 << 18  # (user, item) pairs one step of full-catalogue scoring runs the MLP over


@register_model("neumf", kind="rating")
class NeuMF(RatingModel):
    """Neural matrix factorisation of He, Liao, Zhang, Nie, Hu & Chua, "Neural Collaborative
    Filtering", WWW 2017: s(u, i) = h · [p_u ⊙ q_i, MLP([p'_u, q'_i])] + b_u + b_i, a GMF part and
    an MLP part with their own embeddings, fused by one output layer (trained jointly from the
    start rather than from the paper's pre-trained parts).

    Two ways to train it. With a rating column (``--label rating``) it predicts the rating,
    μ + s(u, i), on the squared error, like the other rating models. Without one it learns from
    the interactions themselves as in the paper: each (user, item) pair against ``num_negatives``
    items drawn uniformly from those the user did not interact with, on the log loss, and then
    ranks the catalogue like a retrieval model (recall@k, NDCG@k).

    Ranking the catalogue runs the MLP over every (user, item) pair: its first layer is split into
    a user half and an item half, computed once each, and the rest runs over chunks of pairs. There
    are no item vectors for an ANN index; the exact scores serve.

    Args:
        schema: The retrieval schema (user and item ids).
        factors: Size of the GMF embeddings.
        mlp_factors: Size of the MLP's user and item embeddings.
        mlp_layers: Widths of the MLP's layers (ReLU after each; the last is the MLP part's size).
        num_negatives: Sampled negatives per interaction without a rating column.
        reg: L2 weight on the embeddings and biases of a training row's user and item, per row;
            None: 0.05 on ratings, 0.005 on interactions.
        dropout: Dropout after each of the MLP's hidden layers; None: 0.5 on ratings (the MLP
            overfits them within a few epochs without it), 0 on interactions.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1], "stars": [4.0, 2.0, 5.0]})
        >>> data = Interactions.from_frame(frame, weight_col="stars")
        >>> model = NeuMF(data.schema(), factors=4, mlp_factors=4, mlp_layers=(8, 4))
        >>> model.eval().predict(model.training_batch(data, seed=0)).shape
        torch.Size([3])
    """

    ranks_without_label: ClassVar[bool] = True
    caches: ClassVar[tuple[str, ...]] = ("_positives",)
    # chosen on MovieLens 100K (BENCHMARKS.md), on valid rows only: ranking learns best from small
    # batches (256, the paper's; recall@10 0.118 at 4096), ratings overfit with them within 5 epochs
    ranking_trainer_defaults: ClassVar[dict[str, Any]] = {**RatingModel.trainer_defaults, "batch_size": 256,
                                                          "max_epochs": 30, "patience": 3}
    test_params: ClassVar[dict[str, Any]] = {"factors": 4, "mlp_factors": 4, "mlp_layers": (8, 4)}

    def __init__(self, schema: Schema, *, factors: int = 32, mlp_factors: int = 32,
                 mlp_layers: tuple[int, ...] = (64, 32), num_negatives: int = 4, reg: float | None = None,
                 dropout: float | None = None) -> None:
        super().__init__(schema)
        if not mlp_layers:
            raise ConfigError("neumf mlp_layers must name at least one layer width.")
        if num_negatives < 1:
            raise ConfigError(f"neumf num_negatives must be >= 1; got {num_negatives!r}.")
        self.num_negatives, self.mlp_factors, self.reg = num_negatives, mlp_factors, reg
        users, items = self.num_users + FIRST_CODE, self.num_items + FIRST_CODE
        self.user_gmf, self.item_gmf = factor_table(users, factors, 0.01), factor_table(items, factors, 0.01)
        self.user_mlp, self.item_mlp = factor_table(users, mlp_factors, 0.01), factor_table(items, mlp_factors, 0.01)
        self.user_bias, self.item_bias = factor_table(users, 1, 0.0), factor_table(items, 1, 0.0)
        widths = [2 * mlp_factors, *mlp_layers]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.dropout = dropout  # a ReLU after every layer, the last too
        self.head = nn.Linear(factors + mlp_layers[-1], 1)
        self._positives: torch.Tensor | None = None  # sorted user * items + item keys of the training pairs

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        if self.explicit:
            return super().training_batch(data, seed=seed)
        pairs = data.matrix().tocoo()  # one row per distinct (user, item) pair
        self._positives = torch.from_numpy(np.sort(pairs.row.astype(np.int64) * self.num_items + pairs.col))
        return Batch({"user": to_codes(pairs.row), "item": to_codes(pairs.col)})

    def forward(self, batch: Batch) -> Any:
        """(B,) predicted ratings (or logits) of the batch's (user, item) codes; in training
        without a rating column, a SampledLogits of each pair against its sampled negatives."""
        users, items = batch.features["user"], batch.features["item"]
        if not self.training:
            return self.mean + self._pairs(users.unsqueeze(1), items.unsqueeze(1)).squeeze(1)
        if self.explicit:
            candidates = items.unsqueeze(1)
        else:
            negatives = torch.randint(self.num_items, (len(items), self.num_negatives), device=items.device) + FIRST_CODE
            candidates = torch.cat([items.unsqueeze(1), negatives], 1)
        rows = self._rows(users.unsqueeze(1), candidates)
        logits = self._combine(rows)
        reg = self.reg if self.reg is not None else (0.05 if self.explicit else 0.005)
        # L2 on the rows a training pair uses (its positive item only), looked up once with the scores
        penalty = reg * torch.stack([rows[name][:, 0].square().sum(-1).mean() for name in rows]).sum()
        if self.explicit:
            return ModelOutput(self.mean + logits.squeeze(1), penalty)
        if self._positives is not None:  # a drawn item the user did interact with is no negative
            keys = (users.unsqueeze(1) - FIRST_CODE) * self.num_items + negatives - FIRST_CODE
            found = torch.searchsorted(self._positives, keys).clamp_max(len(self._positives) - 1)
            hit = torch.cat([torch.zeros_like(keys[:, :1], dtype=torch.bool), self._positives[found] == keys], 1)
            logits = logits.masked_fill(hit, -1e4)  # sigmoid 0: no loss, no gradient
        return ModelOutput(SampledLogits(logits, items.new_zeros(len(items)), binary=True), penalty)

    def _pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, N) scores of users (B, 1) against items (B, N), or all against the same items (1, N)."""
        return self._combine(self._rows(users, items))

    def _rows(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """The embedding rows of users (B, 1) and items (B or 1, N), each table looked up once."""
        return {"user_gmf": self.user_gmf(users), "item_gmf": self.item_gmf(items),
                "user_mlp": self.user_mlp(users), "item_mlp": self.item_mlp(items),
                "user_bias": self.user_bias(users), "item_bias": self.item_bias(items)}

    def _combine(self, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, N) scores from ``_rows``: the GMF part, the MLP part and the biases."""
        first, *rest = cast(list[nn.Linear], list(self.layers))
        half, last = self.mlp_factors, rest[-1].out_features if rest else first.out_features
        user_part = rows["user_mlp"] @ first.weight[:, :half].T + first.bias  # (B, 1, H)
        item_part = rows["item_mlp"] @ first.weight[:, half:].T               # (B or 1, N, H)
        dropout = self.dropout if self.dropout is not None else (0.5 if self.explicit else 0.0)
        hidden = torch.relu(user_part + item_part)
        for layer in rest:
            hidden = torch.relu(layer(F.dropout(hidden, dropout, self.training)))  # (B, N, last)
        u = rows["user_gmf"] * self.head.weight[0, :-last]                    # (B, 1, D)
        v = rows["item_gmf"]
        gmf = (u @ v.transpose(-1, -2)).squeeze(1) if len(v) == 1 else (u * v).sum(-1)
        biases = rows["user_bias"].squeeze(-1) + rows["item_bias"].squeeze(-1)
        return gmf + hidden @ self.head.weight[0, -last:] + self.head.bias + biases

    def _score(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, num_items) the score of every catalogue item, the MLP over chunks of pairs."""
        codes = to_codes(users).unsqueeze(1)
        items = torch.arange(FIRST_CODE, self.num_items + FIRST_CODE).unsqueeze(0)
        step = max(1, PAIRS_PER_CHUNK // max(self.num_items, 1))
        return torch.cat([self.mean + self._pairs(codes[start:start + step], items)
                          for start in range(0, len(codes), step)]) if len(codes) else torch.empty(0, self.num_items)

    def _similar(self, items: np.ndarray) -> torch.Tensor:
        """Cosine of the items' GMF and MLP embeddings together."""
        rows = torch.cat([self.item_gmf.weight, self.item_mlp.weight], 1)[FIRST_CODE:]
        unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return unit[torch.as_tensor(items)] @ unit.T
