"""PNN: inner or outer products of field embeddings fed to an MLP (Qu et al., ICDM 2016)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.schema import Schema

PRODUCTS = ("inner", "outer")


def pairwise_inner_products(fields: torch.Tensor) -> torch.Tensor:
    """Inner product of every field pair i < j, in row-major order: (B, F, D) -> (B, F(F-1)/2).

    Example:
        >>> pairwise_inner_products(torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]]])).tolist()
        [[2.0, 0.0, 3.0]]
    """
    rows, cols = torch.triu_indices(fields.shape[1], fields.shape[1], offset=1, device=fields.device)
    return (fields[:, rows] * fields[:, cols]).sum(-1)


def pooled_outer_product(fields: torch.Tensor) -> torch.Tensor:
    """Outer product of the summed field vectors, PNN's sum-pooling trick: (B, F, D) -> (B, D*D)."""
    total = fields.sum(1)                                                 # (B, D)
    return (total.unsqueeze(2) * total.unsqueeze(1)).flatten(1)           # (B, D*D)


@register_model("pnn", kind="ranking")
class PNN(RankingModel):
    """Product-based Neural Network (Qu et al., "Product-based Neural Networks for User Response
    Prediction", ICDM 2016, arXiv:1611.00144).

    The product layer concatenates the linear signal (the flattened field embeddings) with the
    quadratic signal: pairwise inner products (IPNN) or the outer product of the summed field
    embeddings (OPNN, the paper's sum-pooling trick, O(D²) instead of O(F²D²)); the MLP's first
    layer is the paper's product-layer weights.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        product: "inner" (IPNN) or "outer" (OPNN).
        hidden_units: Widths of the MLP tower.
        dropout: Dropout probability after each hidden layer.

    Raises:
        ConfigError: ``product`` is not one of "inner", "outer".

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> PNN(toy_schema(), embedding_dim=4, product="outer")(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, product: str = "inner",
                 hidden_units: tuple[int, ...] = (256, 256), dropout: float = 0.0) -> None:
        super().__init__(schema)
        if product not in PRODUCTS:
            raise ConfigError(f"PNN product={product!r} is not valid; expected one of {list(PRODUCTS)}.")
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        num_fields = self.embedding.num_fields
        self.product = pairwise_inner_products if product == "inner" else pooled_outer_product
        width = num_fields * (num_fields - 1) // 2 if product == "inner" else embedding_dim**2
        self.mlp = MLP(self.embedding.flat_dim + width, [*hidden_units, 1], dropout=dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        fields = self.embedding(batch.features)                                 # (B, F, D)
        signals = torch.cat([fields.flatten(1), self.product(fields)], dim=1)   # (B, F*D + P)
        return self.mlp(signals).squeeze(-1)                                    # (B,)
