"""xDeepFM: a linear term, a Compressed Interaction Network and an MLP (Lian et al., KDD 2018)."""

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding
from recfunnel.nn.cin import CIN
from recfunnel.schema import Schema


@register_model("xdeepfm", kind="ranking")
class XDeepFM(RankingModel):
    """xDeepFM (Lian et al., "xDeepFM: Combining Explicit and Implicit Feature Interactions for
    Recommender Systems", KDD 2018, arXiv:1803.05170).

    The logit is the sum of three parts over shared field embeddings: a first-order
    linear term, a weighted sum of the CIN's sum-pooled feature maps (explicit, vector-wise
    crosses of bounded degree) and an MLP over the flattened embeddings (implicit crosses).

    Args:
        schema: Input features; each categorical/sequence feature gets a D-dim embedding.
        embedding_dim: D, the size of every field embedding.
        cin_layer_sizes: Number of feature maps H_k of each CIN layer.
        split_half: Send half of each hidden CIN layer's maps to the output, half to the next layer.
        hidden_units: Widths of the MLP tower.
        dropout: Dropout probability after each hidden layer.
        batch_norm: Batch normalisation in the MLP tower.

    Raises:
        ConfigError: No CIN layers, or ``split_half`` with an odd size for a CIN layer but the last.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> XDeepFM(toy_schema(), embedding_dim=4, cin_layer_sizes=(8, 8))(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16,
                 cin_layer_sizes: tuple[int, ...] = (128, 128), split_half: bool = True,
                 hidden_units: tuple[int, ...] = (400, 400), dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        super().__init__(schema)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim, with_linear=True)
        self.cin = CIN(self.embedding.num_fields, cin_layer_sizes, split_half=split_half)
        self.cin_head = nn.Linear(self.cin.output_dim, 1, bias=False)  # the linear term has the bias
        self.mlp = MLP(self.embedding.flat_dim, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)
        self.representation_dim = 1 + self.cin.output_dim + self.mlp.hidden_dim

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,); no sigmoid, because the task owns the link function."""
        fields, linear = self.embedding.forward_with_linear(batch.features)  # (B, F, D), (B,)
        explicit = self.cin_head(self.cin(fields)).squeeze(-1)              # (B,)
        return linear + explicit + self.mlp(fields.flatten(1)).squeeze(-1)  # (B,)

    def represent(self, batch: Batch) -> torch.Tensor:
        """(B, 1 + C + H): the linear term, the CIN's pooled maps and the MLP's last hidden layer."""
        fields, linear = self.embedding.forward_with_linear(batch.features)
        return torch.cat([linear[:, None], self.cin(fields), self.mlp.hidden(fields.flatten(1))], dim=1)
