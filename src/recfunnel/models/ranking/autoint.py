"""AutoInt: stacked multi-head self-attention over field embeddings (Song et al., CIKM 2019)."""

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.nn.attention import InteractingLayer
from recfunnel.schema import Schema


@register_model("autoint", kind="ranking")
class AutoInt(RankingModel):
    """AutoInt (Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
    Neural Networks", CIKM 2019, arXiv:1810.11921).

    Every field embedding (numerics as value times a learned vector, as in the paper) passes
    through stacked interacting layers, each a multi-head self-attention across fields with a
    residual connection; a linear layer reads the concatenated outputs. With
    ``hidden_units`` an MLP over the flattened embeddings is added to the logit: AutoInt+.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        num_layers: Number of stacked interacting layers.
        num_heads: Attention heads per layer.
        attention_dim: d', the width of each head; a layer outputs num_heads * d' per field.
        hidden_units: Widths of the optional MLP tower; empty (the default) is plain AutoInt.
        dropout: Dropout probability after each hidden layer of the MLP.
        batch_norm: Batch normalisation in the MLP tower.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> AutoInt(toy_schema(), embedding_dim=4, hidden_units=(8,))(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, num_layers: int = 3, num_heads: int = 2,
                 attention_dim: int = 32, hidden_units: tuple[int, ...] = (), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        layers: list[InteractingLayer] = []
        width = embedding_dim
        for _ in range(num_layers):
            layers.append(InteractingLayer(width, attention_dim, num_heads=num_heads))
            width = layers[-1].output_dim
        self.interacting = nn.Sequential(*layers)
        self.head = nn.Linear(self.embedding.num_fields * width, 1)
        self.mlp = MLP(self.embedding.flat_dim, [*hidden_units, 1], dropout=dropout,
                       batch_norm=batch_norm) if hidden_units else None

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,); no sigmoid, because the task owns the link function."""
        fields = self.embedding(batch.features)                          # (B, F, D)
        logits = self.head(self.interacting(fields).flatten(1))          # (B, 1)
        if self.mlp is not None:
            logits = logits + self.mlp(fields.flatten(1))                # (B, 1)
        return logits.squeeze(-1)                                        # (B,)
