"""GRU4Rec: next-item recommendation by a recurrent network over the user's recent items."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from recfunnel.models.base import register_model
from recfunnel.models.sequential.base import Loss, NextItemModel
from recfunnel.nn.sequence import GRUEncoder
from recfunnel.schema import Schema


@register_model("gru4rec", kind="sequential")
class GRU4Rec(NextItemModel):
    """Session-based recommendation with recurrent neural networks of Hidasi, Karatzoglou,
    Baltrunas & Tikk, ICLR 2016 (arXiv:1511.06939).

    The embedded items pass through a GRU; its state after the latest item, projected to the
    embedding width, is the query, scored against the (shared) item embeddings. Sequences train
    whole, every position predicting the next item, rather than the paper's session-parallel
    mini-batches; the losses are those of ``recfunnel.models.sequential.base`` (softmax over the
    catalogue by default, which the authors' later work found to do as well as their ranking
    losses).

    Args:
        schema: The retrieval schema (its ``history`` length is the longest sequence read).
        embedding_dim: D, the item embeddings' width.
        hidden_dim: The GRU's state width.
        num_layers: Stacked GRU layers.
        dropout: Dropout on the embedded input (and between layers).
        loss: "ce" (softmax over the catalogue), "sampled" or "bce".
        num_negatives: Sampled items per batch for the "sampled" loss.

    Example:
        >>> import pandas as pd
        >>> from recfunnel.data.interactions import Interactions
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0, 1], "item_id": [0, 1, 2, 1]}))
        >>> model = GRU4Rec(data.schema(max_history=4), embedding_dim=8, hidden_dim=8)
        >>> model(model.training_batch(data, seed=0)).logits.shape  # 2 next-item positions x 3 items
        torch.Size([2, 3])
    """

    test_params: ClassVar[dict[str, Any]] = {"embedding_dim": 16, "hidden_dim": 16}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, hidden_dim: int = 128, num_layers: int = 1,
                 dropout: float = 0.3, loss: Loss = "ce", num_negatives: int = 256) -> None:
        super().__init__(schema, embedding_dim=embedding_dim, loss=loss, num_negatives=num_negatives)
        self.encoder = GRUEncoder(embedding_dim, hidden_dim, num_layers=num_layers, dropout=dropout)

    def encode(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encoder(embedded, valid)
