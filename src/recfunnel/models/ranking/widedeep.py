"""Wide & Deep: a linear model and an MLP trained jointly (Cheng et al., 2016, arXiv:1606.07792)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.schema import Schema


@register_model("widedeep", kind="ranking")
class WideDeep(RankingModel):
    """Wide & Deep click-through model (Cheng et al., 2016, arXiv:1606.07792).

    The logit is the sum of a wide part, bias plus one first-order weight per id and per numeric
    feature, and a deep part, an MLP over the concatenated field embeddings. The paper's wide part
    also takes hand-made cross-product features; here crosses are whatever the schema provides as
    features. Both parts read one table (the weights are its extra column), so one lookup serves
    both, and they are trained jointly, as in the paper.

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        hidden_units: Widths of the MLP tower (the paper's ReLU layers of 1024, 512 and 256).
        dropout: Dropout probability after each hidden layer.
        batch_norm: Batch normalisation in the MLP tower.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> WideDeep(toy_schema(), embedding_dim=4)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16,
                 hidden_units: tuple[int, ...] = (1024, 512, 256), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim, with_linear=True)
        self.mlp = MLP(self.embedding.flat_dim, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)
        self.representation_dim = 1 + self.mlp.hidden_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,): wide + deep, with no link function."""
        fields, wide = self.embedding.forward_with_linear(batch.features)  # (B, F, D), (B,)
        return wide + self.mlp(fields.flatten(1)).squeeze(-1)               # (B,)

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, 1 + H): the wide term and the deep tower's last hidden layer."""
        fields, wide = self.embedding.forward_with_linear(batch.features)
        return torch.cat([wide[:, None], self.mlp.hidden(fields.flatten(1))], dim=1)
