"""DCN-V2: matrix cross layers, stacked on or beside an MLP (Wang et al., WWW 2021, arXiv:2008.13535)."""

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.nn.cross import CrossNetV2
from recfunnel.schema import Schema

STRUCTURES = ("parallel", "stacked")


@register_model("dcnv2", kind="ranking")
class DCNv2(RankingModel):
    """DCN-V2 (Wang et al., "DCN V2: Improved Deep & Cross Network", WWW 2021, arXiv:2008.13535).

    The input x0 is the flattened field embeddings followed by the raw numeric values. "stacked"
    feeds the cross network's output to the MLP; "parallel" reads x0 with both and combines them
    in a final linear layer.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        num_cross_layers: Number of cross layers.
        hidden_units: Widths of the MLP tower.
        dropout: Dropout probability after each hidden layer.
        batch_norm: Batch normalisation in the MLP tower.
        low_rank: Rank r of W = U Vᵀ in every cross layer, or None for full-rank matrices.
        structure: "parallel" or "stacked".

    Raises:
        ConfigError: ``structure`` is not one of "parallel", "stacked".

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> DCNv2(toy_schema(), embedding_dim=4, structure="stacked")(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, num_cross_layers: int = 3,
                 hidden_units: tuple[int, ...] = (256, 256), dropout: float = 0.0,
                 low_rank: int | None = None, structure: str = "parallel", batch_norm: bool = False) -> None:
        super().__init__(schema)
        if structure not in STRUCTURES:
            raise ConfigError(f"DCNv2 structure={structure!r} is not valid; expected one of {list(STRUCTURES)}.")
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        width = self.embedding.dense_dim
        self.cross = CrossNetV2(width, num_cross_layers, low_rank=low_rank)
        self.mlp = MLP(width, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)
        # parallel: a linear layer on [cross; deep] equals the sum of one per part, and the
        # MLP's own last layer is the deep part.
        self.cross_head = nn.Linear(width, 1, bias=False) if structure == "parallel" else None
        self.parallel = structure == "parallel"
        self.representation_dim = self.mlp.hidden_dim + (width if self.parallel else 0)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        x0 = self.embedding.dense_input(batch.features)                             # (B, F*D + Fn)
        crossed = self.cross(x0)                                                    # (B, F*D + Fn)
        if self.cross_head is None:
            return self.mlp(crossed).squeeze(-1)                                    # (B,)
        return (self.cross_head(crossed) + self.mlp(x0)).squeeze(-1)               # (B,)

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, [W +] H): the cross network's output (parallel) and the MLP's last hidden layer."""
        x0 = self.embedding.dense_input(batch.features)
        crossed = self.cross(x0)
        if not self.parallel:
            return self.mlp.hidden(crossed)
        return torch.cat([crossed, self.mlp.hidden(x0)], dim=1)
