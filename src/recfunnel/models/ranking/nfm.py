"""NFM: an MLP over the bi-interaction pooling of field embeddings (He & Chua, SIGIR 2017)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, Dropout, FeatureEmbedding
from recfunnel.nn.interaction import BiInteraction
from recfunnel.schema import Schema


@register_model("nfm", kind="ranking")
class NFM(RankingModel):
    """Neural Factorization Machine (He & Chua, SIGIR 2017, arXiv:1708.05027).

    The logit is a linear term plus an MLP over the bi-interaction vector Σ_{i<j} v_i ⊙ v_j,
    shape (B, D). With no hidden layers the MLP is one weighted sum of that vector, a weighted FM.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding and of the bi-interaction vector.
        hidden_units: Widths of the MLP tower (the paper finds one hidden layer works best).
        dropout: Dropout probability on the bi-interaction vector and after each hidden layer.
        batch_norm: Batch normalisation of the bi-interaction vector and in the MLP tower.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> NFM(toy_schema(), embedding_dim=4)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, hidden_units: tuple[int, ...] = (64,),
                 dropout: float = 0.0, batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim, with_linear=True)
        self.bi_interaction = BiInteraction()
        # The paper regularises the pooled vector itself with dropout and batch norm.
        self.pooled_norm = torch.nn.BatchNorm1d(embedding_dim) if batch_norm else torch.nn.Identity()
        self.pooled_dropout = Dropout(dropout)
        self.mlp = MLP(embedding_dim, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)
        self.representation_dim = 1 + self.mlp.hidden_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,); no sigmoid, because the task owns the link function."""
        fields, linear = self.embedding.forward_with_linear(batch.features)          # (B, F, D), (B,)
        pooled = self.pooled_dropout(self.pooled_norm(self.bi_interaction(fields)))  # (B, D)
        return linear + self.mlp(pooled).squeeze(-1)                                 # (B,)

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, 1 + H): the linear term and the MLP's last hidden layer over the pooled pairs."""
        fields, linear = self.embedding.forward_with_linear(batch.features)
        pooled = self.pooled_dropout(self.pooled_norm(self.bi_interaction(fields)))
        return torch.cat([linear[:, None], self.mlp.hidden(pooled)], dim=1)
