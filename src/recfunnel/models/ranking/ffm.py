"""FFM: a factorization machine with one latent vector per feature and per other field (Juan et al., 2016)."""

import torch

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import FeatureEmbedding
from recfunnel.nn.interaction import FieldAwareInteraction
from recfunnel.schema import Schema


@register_model("ffm", kind="ranking")
class FFM(RankingModel):
    """Field-aware Factorization Machine (Juan, Zhuang, Chin & Lin, "Field-aware Factorization
    Machines for CTR Prediction", RecSys 2016; no arXiv version).

    Every feature value has F latent vectors, one per field it can meet, and the pair (i, j)
    contributes <v_{i,f_j}, v_{j,f_i}>, plus a linear term. The F vectors of a value are
    one row of width F*D in the shared sparse embedding table, so a batch is still one lookup
    and the optimizer updates only the rows it touched; the table is F times wider than FM's.

    Args:
        schema: Input features; each gets F latent vectors of size D.
        embedding_dim: D, the size of each field-aware latent vector (libffm's default k is 4).

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> FFM(toy_schema(), embedding_dim=2)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 4) -> None:
        super().__init__(schema)
        num_fields = len(schema.inputs)
        self.embedding = FeatureEmbedding(schema.inputs, num_fields * embedding_dim, with_linear=True)
        self.interaction = FieldAwareInteraction()

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,)."""
        flat, linear = self.embedding.forward_with_linear(batch.features)  # (B, F, F*D), (B,)
        # [:, i, j] is v_{i,f_j}: field i's vector for the field at position j of embedding.order
        fields = flat.unflatten(-1, (flat.shape[1], -1))                    # (B, F, F, D)
        return linear + self.interaction(fields)                            # (B,)
