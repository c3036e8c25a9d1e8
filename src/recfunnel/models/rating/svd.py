"""SVD: biased matrix factorisation of explicit ratings (the Netflix-prize model)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import FIRST_CODE, History, to_codes
from recfunnel.models.base import ModelOutput, register_model
from recfunnel.models.rating.base import RatingModel
from recfunnel.schema import Schema


def factor_table(rows: int, dim: int, std: float) -> nn.Embedding:
    """A sparse table of ``rows`` code rows: normal(0, std) for ids, zeros for padding and OOV."""
    table = nn.Embedding(rows, dim, sparse=True)
    nn.init.normal_(table.weight, std=std)
    with torch.no_grad():
        table.weight[:FIRST_CODE] = 0.0
    return table


@register_model("svd", kind="rating")
class SVD(RatingModel):
    """Biased matrix factorisation, "SVD" of the Netflix prize (Koren, Bell & Volinsky, "Matrix
    Factorization Techniques for Recommender Systems", IEEE Computer 2009):
    r̂(u, i) = μ + b_u + b_i + p_u · q_i, trained on the squared error with an L2 penalty of
    ``reg`` on each rating's own parameters (Funk's SGD objective), in mini-batches.

    Args:
        schema: The retrieval schema (user and item ids).
        factors: Latent dimensions D.
        reg: L2 weight on p_u, q_i, b_u and b_i, per rating that uses them.
        init_std: Standard deviation of the factors' initial values.

    Example:
        >>> import pandas as pd
        >>> from recfunnel.data.interactions import Interactions
        >>> frame = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1], "stars": [4.0, 2.0, 5.0]})
        >>> data = Interactions.from_frame(frame, weight_col="stars")
        >>> model = SVD(data.schema(), factors=4)
        >>> batch = model.training_batch(data, seed=0)
        >>> round(float(model.mean), 3), model.eval().predict(batch).shape
        (3.667, torch.Size([3]))
    """

    test_params: ClassVar[dict[str, Any]] = {"factors": 8}

    def __init__(self, schema: Schema, *, factors: int = 64, reg: float = 0.1, init_std: float = 0.1) -> None:
        super().__init__(schema)
        self.reg = reg
        # [p_u, b_u] and [q_i, b_i]: the bias is each table's last column, so a step looks up,
        # differentiates and updates two sparse tables rather than four
        self.user_factors = factor_table(self.num_users + FIRST_CODE, factors + 1, init_std)
        self.item_factors = factor_table(self.num_items + FIRST_CODE, factors + 1, init_std)
        with torch.no_grad():
            self.user_factors.weight[:, -1] = 0.0
            self.item_factors.weight[:, -1] = 0.0

    def user_vectors(self, users: torch.Tensor, rows: torch.Tensor,
                     batch: Batch | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) the users' vectors from their table ``rows`` [p_u, b_u], and (B,) the squared norms
        of the parameters they are made of (SVD: p_u alone; SVD++ adds its implicit term and the y_j)."""
        p = rows[:, :-1]
        return p, p.square().sum(1)

    def forward(self, batch: Batch) -> Any:
        """(B,) ratings of the batch's (user, item) codes; in training with the L2 term as a ModelOutput."""
        users, items = batch.features["user"], batch.features["item"]
        user_rows, item_rows = self.user_factors(users), self.item_factors(items)
        (p, user_norms), q = self.user_vectors(users, user_rows, batch), item_rows[:, :-1]
        b_u, b_i = user_rows[:, -1], item_rows[:, -1]
        ratings = self.mean + b_u + b_i + (p * q).sum(1)
        if not self.training or not self.reg:
            return ratings
        penalty = user_norms + item_rows.square().sum(1) + b_u.square()
        return ModelOutput(ratings, self.reg * penalty.mean())

    def _query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, D + 2): [p_u, μ + b_u, 1], so that a dot with an item's [q_i, 1, b_i] is the rating."""
        codes = to_codes(users)
        rows = self.user_factors(codes)
        p, _ = self.user_vectors(codes, rows, self._history_batch(codes, history))
        return torch.cat([p, self.mean + rows[:, -1:], torch.ones_like(p[:, :1])], 1)

    def _history_batch(self, users: torch.Tensor, history: History) -> Batch | None:
        return None

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, D + 2): [q_i, 1, b_i]."""
        rows = self.item_factors.weight[FIRST_CODE:]
        return torch.cat([rows[:, :-1], torch.ones_like(rows[:, :1]), rows[:, -1:]], 1)
