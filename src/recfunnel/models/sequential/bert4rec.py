"""BERT4Rec: a bidirectional transformer trained to fill in masked items of the user's sequence."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import FIRST_CODE, PADDING, History, Interactions, to_codes
from recfunnel.errors import ConfigError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import SampledLogits
from recfunnel.models.sequential.base import Loss, NextItemModel, first_used
from recfunnel.nn.transformer import SequenceEncoder
from recfunnel.schema import Schema


@register_model("bert4rec", kind="sequential")
class BERT4Rec(NextItemModel):
    """Sequential recommendation with bidirectional encoder representations from transformers, of
    Sun et al., CIKM 2019 (arXiv:1904.06690).

    Training hides a random ``mask_ratio`` of each sequence's items behind a learned [MASK]
    embedding (at least one per sequence, and the latest item with probability
    ``mask_last``, which trains the position a query asks about) and predicts each hidden item from
    the items on both sides (GELU transformer blocks, no causal mask). A query appends [MASK] after
    the user's recent items; the state there, scored against the shared item embeddings, ranks
    the catalogue. Losses as ``recfunnel.models.sequential.base`` (softmax over the catalogue by
    default, as in the paper).

    Args:
        schema: The retrieval schema (its ``history`` length is the longest sequence read, [MASK]
            included).
        embedding_dim: D, item embeddings and transformer width.
        num_blocks: Transformer blocks.
        num_heads: Attention heads per block.
        dropout: Dropout on embeddings, attention weights and residual branches.
        mask_ratio: Share of a training sequence's items hidden.
        mask_last: Probability that a training sequence also hides its latest item.
        loss: "ce" (softmax over the catalogue), "sampled" or "bce".
        num_negatives: Sampled items per batch for the "sampled" loss.

    Example:
        >>> import pandas as pd
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 0, 1], "item_id": [0, 1, 2, 1]}))
        >>> model = BERT4Rec(data.schema(max_history=4), embedding_dim=8, mask_ratio=1.0)
        >>> model(model.training_batch(data, seed=0)).target.tolist()  # every item hidden: all predicted
        [0, 1, 2, 1]
    """

    test_params: ClassVar[dict[str, Any]] = {"embedding_dim": 16, "num_blocks": 1}
    trainer_defaults: ClassVar[dict[str, Any]] = {**NextItemModel.trainer_defaults, "max_epochs": 100}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, num_blocks: int = 2, num_heads: int = 2,
                 dropout: float = 0.2, mask_ratio: float = 0.2, mask_last: float = 0.25, loss: Loss = "ce",
                 num_negatives: int = 256) -> None:
        super().__init__(schema, embedding_dim=embedding_dim, loss=loss, num_negatives=num_negatives)
        for name, value in (("mask_ratio", mask_ratio), ("mask_last", mask_last)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"bert4rec {name} must be in [0, 1]; got {value!r}.")
        self.mask_ratio, self.mask_last = float(mask_ratio), float(mask_last)
        self.mask = nn.Parameter(torch.randn(embedding_dim) * embedding_dim ** -0.5)
        self.encoder = SequenceEncoder(embedding_dim, self.max_history, num_blocks=num_blocks, num_heads=num_heads,
                                       dropout=dropout, activation="gelu", causal=False)

    def encode(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encoder(embedded, valid)

    def history_weights(self, embedded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encoder.last_attention(embedded, valid)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Every user's items as rows of ``history`` codes (the masks are drawn at each step)."""
        self.sampler.fit(data)
        return Batch({"history": to_codes(data.item_sequences(self.max_history), missing=PADDING)})

    def forward(self, batch: Batch) -> SampledLogits:
        """Logits of the hidden items of each sequence (a fresh random mask at every call)."""
        history = batch.features["history"]
        history = history[:, first_used(history):]
        valid = history > PADDING
        hidden = valid & (torch.rand(history.shape, device=history.device) < self.mask_ratio)
        latest = valid.any(1) & ((torch.rand(len(history), device=history.device) < self.mask_last)
                                 | ~hidden.any(1))   # and at least one item per sequence
        hidden[:, -1] |= latest & valid[:, -1]
        embedded = torch.where(hidden.unsqueeze(-1), self.mask, self.items(history))
        states = self.encode(embedded, valid)
        return self.logits(states[hidden], history[hidden] - FIRST_CODE)

    def _query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, D) the state at a [MASK] appended after each user's recent items (the oldest dropped)."""
        codes = to_codes(np.asarray(history.recent, dtype=np.int64), missing=PADDING)
        codes = torch.cat([codes[:, 1:], torch.full_like(codes[:, :1], FIRST_CODE)], 1)  # a placeholder item
        codes = codes[:, first_used(codes):]
        valid = codes > PADDING
        embedded = self.items(codes)
        embedded[:, -1] = self.mask
        return self.encode(embedded, valid)[:, -1]
