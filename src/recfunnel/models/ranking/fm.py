"""FM: linear term plus pairwise field interactions (Rendle, 2010, ICDM)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import FactorizationMachine, FeatureEmbedding
from recfunnel.schema import Schema


@register_model("fm", kind="ranking")
class FM(RankingModel):
    """Factorization Machine (Rendle, 2010, "Factorization Machines", ICDM).

    Args:
        schema: Input features; each gets a D-dim latent vector.
        embedding_dim: D, the latent dimension.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> FM(toy_schema(), embedding_dim=4)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim, with_linear=True)
        self.fm = FactorizationMachine()

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        fields, linear = self.embedding.forward_with_linear(batch.features)  # (B, F, D), (B,)
        return linear + self.fm(fields)                                      # (B,)
