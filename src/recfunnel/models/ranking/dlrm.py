"""DLRM: a bottom MLP for dense features, dot-product interactions, a top MLP (Naumov et al., 2019)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.nn.interaction import pairwise_inner_products
from recfunnel.schema import Numeric, Schema


@register_model("dlrm", kind="ranking")
class DLRM(RankingModel):
    """Deep Learning Recommendation Model (Naumov et al., "Deep Learning Recommendation Model for
    Personalization and Recommendation Systems", 2019, arXiv:1906.00091).

    The raw numeric features go through a bottom MLP to one D-dim vector; every other feature
    (categorical, bag, sequence, bucketized numeric) is a D-dim embedding. The interaction is the
    dot product of every pair of these vectors (i < j, no self-products, as in the reference
    code), concatenated with the bottom MLP's output and read by the top MLP. With no raw numeric
    features the bottom MLP is skipped and only the embeddings interact.

    Args:
        schema: Input features; raw numerics feed the bottom MLP, the rest get D-dim embeddings.
        embedding_dim: D, the size of every embedding and of the bottom MLP's output.
        bottom_units: Hidden widths of the bottom MLP (its output width is D).
        top_units: Hidden widths of the top MLP (its output is the logit).
        dropout: Dropout probability after each hidden layer of the top MLP.
        batch_norm: Batch normalisation in both MLPs.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> DLRM(toy_schema(), embedding_dim=4, bottom_units=(8,))(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16,
                 bottom_units: tuple[int, ...] = (512, 256, 64),
                 top_units: tuple[int, ...] = (512, 256), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        dense = [f.name for f in schema.inputs if isinstance(f, Numeric) and f.vocab_size is None]
        self.dense_features = dense
        self.embedding = FeatureEmbedding([f for f in schema.inputs if f.name not in dense], embedding_dim)
        self.bottom = MLP(len(dense), [*bottom_units, embedding_dim], batch_norm=batch_norm) if dense else None
        vectors = self.embedding.num_fields + int(self.bottom is not None)
        width = vectors * (vectors - 1) // 2 + (embedding_dim if self.bottom is not None else 0)
        self.top = MLP(width, [*top_units, 1], dropout=dropout, batch_norm=batch_norm)

    def interactions(self, batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The bottom MLP's output (B, D), or None without numerics, and the pairwise dot
        products (B, P) of [bottom output, embeddings in ``self.embedding.order``], row-major i < j."""
        vectors = self.embedding(batch.features)                                       # (B, Fs, D)
        if self.bottom is None:
            return None, pairwise_inner_products(vectors)                              # (B, P)
        dense = self.bottom(torch.stack([batch.features[n] for n in self.dense_features], dim=1))  # (B, D)
        vectors = torch.cat([dense.unsqueeze(1), vectors], dim=1)                      # (B, Fs + 1, D)
        return dense, pairwise_inner_products(vectors)                                 # (B, D), (B, P)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,); no sigmoid, because the task owns the link function."""
        dense, products = self.interactions(batch)
        top_input = products if dense is None else torch.cat([dense, products], dim=1)  # (B, D + P)
        return self.top(top_input).squeeze(-1)                                          # (B,)
