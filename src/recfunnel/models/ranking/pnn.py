"""PNN: inner or outer products of field embeddings fed to an MLP (Qu et al., ICDM 2016)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.nn.interaction import pairwise_inner_products, pooled_outer_product
from recfunnel.schema import Schema

PRODUCTS = ("inner", "outer")


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
        batch_norm: Batch normalisation in the MLP tower.

    Raises:
        ConfigError: ``product`` is not one of "inner", "outer".

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> PNN(toy_schema(), embedding_dim=4, product="outer")(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, product: str = "inner",
                 hidden_units: tuple[int, ...] = (256, 256), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        if product not in PRODUCTS:
            raise ConfigError(f"PNN product={product!r} is not valid; expected one of {list(PRODUCTS)}.")
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        num_fields = self.embedding.num_fields
        self.product = pairwise_inner_products if product == "inner" else pooled_outer_product
        width = num_fields * (num_fields - 1) // 2 if product == "inner" else embedding_dim**2
        self.mlp = MLP(self.embedding.flat_dim + width, [*hidden_units, 1], dropout=dropout,
                       batch_norm=batch_norm)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        fields = self.embedding(batch.features)                                 # (B, F, D)
        signals = torch.cat([fields.flatten(1), self.product(fields)], dim=1)   # (B, F*D + P)
        return self.mlp(signals).squeeze(-1)                                    # (B,)
