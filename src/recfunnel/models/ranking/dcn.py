"""DCN: cross layers in parallel with an MLP (Wang et al., ADKDD 2017, arXiv:1708.05123)."""

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.nn.cross import CrossNet
from recfunnel.schema import Schema


@register_model("dcn", kind="ranking")
class DCN(RankingModel):
    """Deep & Cross Network (Wang et al., ADKDD 2017, arXiv:1708.05123).

    The input x0 is the flattened field embeddings followed by the raw numeric values. A cross
    network and an MLP read x0 side by side and a final linear layer reads both outputs.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        num_cross_layers: Number of cross layers.
        hidden_units: Widths of the MLP tower.
        dropout: Dropout probability after each hidden layer.
        batch_norm: Batch normalisation in the MLP tower.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> DCN(toy_schema(), embedding_dim=4)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, num_cross_layers: int = 3,
                 hidden_units: tuple[int, ...] = (256, 256), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        width = self.embedding.dense_dim
        self.cross = CrossNet(width, num_cross_layers)
        # A linear layer on [cross; deep] is a linear layer on each part, summed; the MLP's own
        # last linear layer is the deep part, so the towers need no concatenation.
        self.cross_head = nn.Linear(width, 1, bias=False)
        self.mlp = MLP(width, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)
        self.representation_dim = width + self.mlp.hidden_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        x0 = self.embedding.dense_input(batch.features)                             # (B, F*D + Fn)
        return (self.cross_head(self.cross(x0)) + self.mlp(x0)).squeeze(-1)        # (B,)

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, W + H): the cross network's output and the MLP's last hidden layer."""
        x0 = self.embedding.dense_input(batch.features)
        return torch.cat([self.cross(x0), self.mlp.hidden(x0)], dim=1)
