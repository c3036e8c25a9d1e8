"""SASRec: next-item recommendation by causal self-attention over the user's recent items."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from recfunnel.models.base import register_model
from recfunnel.models.sequential.base import Loss, NextItemModel
from recfunnel.nn.transformer import SequenceEncoder
from recfunnel.schema import Schema


@register_model("sasrec", kind="sequential")
class SASRec(NextItemModel):
    """Self-attentive sequential recommendation of Kang & McAuley, "Self-Attentive Sequential
    Recommendation", ICDM 2018 (arXiv:1808.09781).

    The user's last ``max_history`` items (their embeddings plus learned positions) pass through
    causal transformer blocks (ReLU feed-forward); the state at the latest position is the query.
    Training, losses and queries: ``recfunnel.models.sequential.base``. Explanations name the
    history item the latest position attends to most (last block, heads averaged), weighed by
    its closeness to the candidate.

    Args:
        schema: The retrieval schema (its ``history`` length is the longest sequence read).
        embedding_dim: D, item embeddings and transformer width.
        num_blocks: Transformer blocks.
        num_heads: Attention heads per block.
        dropout: Dropout on embeddings, attention weights and residual branches.
        loss: "ce" (softmax over the catalogue), "sampled" or "bce" (the paper's).
        num_negatives: Sampled items per batch for the "sampled" loss.

    Example:
        >>> import pandas as pd
        >>> from recfunnel.data.interactions import Interactions
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0, 1], "item_id": [0, 1, 2, 1]}))
        >>> model = SASRec(data.schema(max_history=4), embedding_dim=8)
        >>> output = model(model.training_batch(data, seed=0))  # 2 next-item positions x 3 items
        >>> output.logits.shape, output.target.tolist()
        (torch.Size([2, 3]), [1, 2])
    """

    test_params: ClassVar[dict[str, Any]] = {"embedding_dim": 16, "num_blocks": 1}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, num_blocks: int = 2, num_heads: int = 1,
                 dropout: float = 0.3, loss: Loss = "ce", num_negatives: int = 256) -> None:
        super().__init__(schema, embedding_dim=embedding_dim, loss=loss, num_negatives=num_negatives)
        self.encoder = SequenceEncoder(embedding_dim, self.max_history, num_blocks=num_blocks, num_heads=num_heads,
                                       dropout=dropout, activation="relu", causal=True)

    def encode(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encoder(embedded, valid)

    def history_weights(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encoder.last_attention(embedded, valid)
