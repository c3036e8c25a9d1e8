"""FNN: an MLP over concatenated field embeddings (Zhang et al., ECIR 2016, arXiv:1601.02376)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.schema import Schema


@register_model("fnn", kind="ranking")
class FNN(RankingModel):
    """Factorisation-machine supported Neural Network (Zhang et al., ECIR 2016, arXiv:1601.02376).

    An MLP over the concatenated field embeddings, with no linear or FM term. The paper
    initialises the embeddings from a pre-trained FM; this implementation has no FM
    pre-training: embeddings start at random and are learned end to end with the MLP.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        hidden_units: Widths of the MLP tower.
        dropout: Dropout probability after each hidden layer.
        batch_norm: Batch normalisation in the MLP tower.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> FNN(toy_schema(), embedding_dim=4)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16,
                 hidden_units: tuple[int, ...] = (400, 400, 400), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        self.mlp = MLP(self.embedding.flat_dim, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,); no sigmoid, because the task owns the link function."""
        fields = self.embedding(batch.features)          # (B, F, D)
        return self.mlp(fields.flatten(1)).squeeze(-1)   # (B,)
