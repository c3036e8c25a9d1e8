"""FM: linear term plus pairwise field interactions (Rendle, 2010, ICDM)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import FactorizationMachine, FeatureEmbedding
from recfunnel.nn.interaction import BiInteraction
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
        self.pairs = BiInteraction()  # the FM term before its sum over D, for ``represent``
        self.representation_dim = 1 + embedding_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        fields, linear = self.embedding.forward_with_linear(batch.features)  # (B, F, D), (B,)
        return linear + self.fm(fields)                                      # (B,)

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, 1 + D): the linear term and the pairwise interactions per dimension (their sum is
        the FM term)."""
        fields, linear = self.embedding.forward_with_linear(batch.features)
        return torch.cat([linear[:, None], self.pairs(fields)], dim=1)
