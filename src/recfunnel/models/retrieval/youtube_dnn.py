"""YouTube DNN candidate generation: pooled watch history through a ReLU tower, sampled softmax."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, Interactions
from recfunnel.errors import DataError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import RetrievalModule, SampledLogits, indices, users_and_recent
from recfunnel.nn import MLP
from recfunnel.nn.pooling import embed_history, masked_mean
from recfunnel.nn.sampling import CandidateSampler, next_item_batch
from recfunnel.nn.side_features import SideFeatures
from recfunnel.schema import Schema


@register_model("youtube_dnn", kind="retrieval")
class YouTubeDNN(RetrievalModule):
    """Deep candidate generation of Covington, Adams & Sargin, "Deep Neural Networks for YouTube
    Recommendations", RecSys 2016.

    The user vector is an MLP (ReLU) over the mean embedding of the user's last ``max_history``
    items, concatenated with the user's features when a user table was given; items are scored
    by the rows of a separate output table (the softmax weights, with a bias per item). Training
    predicts every interaction's item from the items before it, by a sampled softmax over the
    row's own positive and ``num_negatives`` items shared by the batch, drawn from the training
    frequencies (or uniformly), with each logit corrected by its candidate's log expected count.

    Args:
        schema: The retrieval schema (ids, history length, user features).
        embedding_dim: D, the size of item embeddings and of the user vector.
        hidden_units: Hidden widths of the ReLU tower (its output is D).
        num_negatives: Sampled negatives per batch.
        negatives: "frequency" (training counts ** 0.75) or "uniform" proposal.
        dropout: Dropout after each hidden layer.

    Example:
        >>> import pandas as pd
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1]}))
        >>> model = YouTubeDNN(data.schema(), embedding_dim=8, num_negatives=4)
        >>> model(model.training_batch(data, seed=0)).logits.shape  # 3 rows x (3 positives + 4)
        torch.Size([3, 7])
    """

    test_params = {"embedding_dim": 16, "hidden_units": (32,), "num_negatives": 8}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, hidden_units: tuple[int, ...] = (256,),
                 num_negatives: int = 256, negatives: str = "frequency", dropout: float = 0.1) -> None:
        super().__init__(schema)
        dim = embedding_dim
        self.watches = nn.Embedding(self.num_items + 1, dim, sparse=True)  # row 0 pads histories
        self.softmax = nn.Embedding(self.num_items, dim + 1, sparse=True)  # weights and a bias column
        nn.init.normal_(self.watches.weight, std=0.1)
        nn.init.normal_(self.softmax.weight, std=0.1)
        with torch.no_grad():
            self.softmax.weight[:, -1] = 0.0
        profile = self.user_features
        self.user_side = SideFeatures(profile, self.num_users, dim) if profile else None
        width = dim + (self.user_side.output_dim if self.user_side else 0)
        self.tower = MLP(width, [*hidden_units, dim], dropout=dropout)
        self.sampler = CandidateSampler(self.num_items, num_negatives=num_negatives, in_batch=False,
                                        distribution=negatives)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Fill the user table and the item frequencies; one next-item example per interaction."""
        self.sampler.fit(data)
        if self.user_side is not None:
            if data.user_features is None:
                raise DataError("youtube_dnn was built with a user schema but the interactions carry no "
                                "user_features; pass user_features=... to fit.")
            self.user_side.fill(data.user_features)
        return next_item_batch(data, self.max_history)

    def _queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        parts = [masked_mean(*embed_history(self.watches, history))]     # (B, D)
        if self.user_side is not None:
            parts.append(self.user_side(users))
        user = self.tower(torch.cat(parts, 1))                            # (B, D)
        return torch.cat([user, torch.ones_like(user[:, :1])], 1)         # (B, D + 1): meets the bias

    def forward(self, batch: Batch) -> SampledLogits:
        """Logits of each example's own positive and the shared sampled negatives."""
        users, items, history = indices(batch, "user", "item", "history")
        queries = self._queries(users, history)
        ids, log_q = self.sampler(items)
        return SampledLogits(*self.sampler.logits(queries, self.softmax(ids), ids, log_q))

    def _query_vectors(self, users: np.ndarray, history: History | None) -> torch.Tensor:
        """(B, D + 1) user vectors from the users' recent items (and features)."""
        users_index, recent = users_and_recent(users, history, self.max_history)
        return self._queries(users_index, recent)

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, D + 1) softmax weights, the bias last."""
        return self.softmax.weight
