"""I-AutoRec: an autoencoder that reconstructs each item's vector of ratings from its users."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import FIRST_CODE, History, Interactions, to_codes
from recfunnel.models.base import ModelOutput, register_model
from recfunnel.models.rating.base import RatingModel
from recfunnel.models.rating.svd import factor_table
from recfunnel.nn.bags import bag_product, csr_positions
from recfunnel.schema import Schema


@register_model("autorec", kind="rating")
class AutoRec(RatingModel):
    """Item-based AutoRec of Sedhain, Menon, Sanner & Xie, "AutoRec: Autoencoders Meet
    Collaborative Filtering", WWW 2015: an item's ratings r_i (one entry per user, observed ones
    only) are encoded as h_i = sigmoid(V r_i + c) and decoded as r̂(u, i) = μ + W_u · h_i + b_u,
    the loss the squared error on observed entries alone, with an L2 penalty of ``reg`` on V and W.

    V r_i is a sum over the users who rated i of their ratings times a row V_u, so V and W are
    user tables updated only on the rows a step touched; training rows come grouped by item, so
    a step encodes each of its items once. After training the codes h_i are kept with the model,
    and a prediction is the dot product of [W_u, μ + b_u] with [h_i, 1]: the catalogue is ranked
    like any vector model's. A user unseen in training gets the mean.

    Args:
        schema: The retrieval schema (user and item ids).
        hidden: Units of the code h_i (the paper's k).
        reg: L2 weight on the V and W rows, per rating that uses them.
        init_std: Standard deviation of V's and W's initial values.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1], "stars": [4.0, 2.0, 5.0]})
        >>> data = Interactions.from_frame(frame, weight_col="stars")
        >>> model = AutoRec(data.schema(), hidden=8)
        >>> model.eval().predict(model.training_batch(data, seed=0)).shape
        torch.Size([3])
    """

    groups: ClassVar[str | None] = "item"
    caches: ClassVar[tuple[str, ...]] = ("_raters",)
    # chosen on a 90/10 split of MovieLens 100K's u1.base (BENCHMARKS.md): Adagrad at 0.01 on the
    # tables with 200 units and reg 0.3 plateaus by epoch 25-30 and does not drift after it
    trainer_defaults: ClassVar[dict[str, Any]] = {**RatingModel.trainer_defaults, "max_epochs": 30, "sparse_lr": 0.01}
    test_params: ClassVar[dict[str, Any]] = {"hidden": 8}
    test_trainer: ClassVar[dict[str, Any]] = {"sparse_lr": 0.1}  # a few hundred ratings in the tests

    def __init__(self, schema: Schema, *, hidden: int = 200, reg: float = 0.3, init_std: float = 0.01) -> None:
        super().__init__(schema)
        self.reg = reg
        self.encoder = factor_table(self.num_users + FIRST_CODE, hidden, init_std)
        self.encoder_bias = nn.Parameter(torch.zeros(hidden))
        self.decoder = factor_table(self.num_users + FIRST_CODE, hidden, init_std)
        self.decoder_bias = factor_table(self.num_users + FIRST_CODE, 1, 0.0)
        self.codes: torch.Tensor
        self.register_buffer("codes", torch.zeros(self.num_items + FIRST_CODE, hidden))
        self._raters: tuple[torch.Tensor, ...] | None = None  # training items' CSR (indptr, user codes, ratings)
        self._stale = False  # a training step ran since the codes were last computed

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        batch = super().training_batch(data, seed=seed)  # checks that there are ratings
        known = data.known()
        # each item's raters in user order, a pair rated twice by the mean of its ratings
        pairs, inverse = np.unique(known.items.astype(np.int64) * self.num_users + known.users, return_inverse=True)
        ratings = np.bincount(inverse, weights=known.weights) / np.bincount(inverse)
        indptr = np.searchsorted(pairs // self.num_users, np.arange(self.num_items + 1))
        self._raters = (torch.from_numpy(indptr.astype(np.int64)), torch.from_numpy(pairs % self.num_users + FIRST_CODE),
                        torch.from_numpy(ratings.astype(np.float32)))
        self._stale = True  # new ratings: the codes follow at the next refresh
        return batch

    def encode(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, hidden) codes of distinct item codes from their training ratings, and (B,) the
        squared norms of the V rows each used."""
        if self._raters is None:
            raise RuntimeError("autorec encodes items from its training ratings: fit it first.")
        indptr, users, ratings = self._raters
        positions, offsets = csr_positions(indptr, torch.where(items >= FIRST_CODE, items - FIRST_CODE, -1))
        sums, norms = bag_product(self.encoder, users[positions], offsets, ratings[positions])
        return torch.sigmoid(sums + self.encoder_bias), norms

    def forward(self, batch: Batch) -> Any:
        """(B,) ratings of the batch's (user, item) codes; in training with the L2 term as a ModelOutput."""
        users, items = batch.features["user"], batch.features["item"]
        w, b_u = self.decoder(users), self.decoder_bias(users).squeeze(1)
        if not self.training:
            return self.mean + b_u + (w * self.codes[items]).sum(1)
        self._stale = True
        distinct, inverse = torch.unique(items, return_inverse=True)
        codes, norms = self.encode(distinct)
        ratings = self.mean + b_u + (w * codes[inverse]).sum(1)
        if not self.reg:
            return ratings
        return ModelOutput(ratings, self.reg * (w.square().sum() + norms.sum()) / len(users))

    def train(self, mode: bool = True) -> AutoRec:
        if not mode:
            self.refresh_codes()
        return super().train(mode)  # type: ignore[return-value]

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.refresh_codes()  # what is saved or kept as the best epoch matches the weights
        return super().state_dict(*args, **kwargs)

    @torch.no_grad()
    def refresh_codes(self) -> None:
        """Recompute every item's code from the training ratings when a training step ran since
        the last time (a no-op once loaded: the codes are then the saved ones)."""
        if self._raters is not None and self._stale:
            self.codes.copy_(self.encode(torch.arange(len(self.codes), device=self.codes.device))[0])
            self._stale = False

    def _query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, hidden + 1): [W_u, μ + b_u]."""
        codes = to_codes(users)
        return torch.cat([self.decoder(codes), self.mean + self.decoder_bias(codes)], 1)

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, hidden + 1): [h_i, 1]."""
        codes = self.codes[FIRST_CODE:]
        return torch.cat([codes, torch.ones_like(codes[:, :1])], 1)
