"""DIN: target attention over the user's behaviour sequence (Zhou et al., KDD 2018, arXiv:1706.06978)."""

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import RankingModel, register_model
from recfunnel.nn import MLP, FeatureEmbedding, TargetAttention, behaviour_pairs, nonpadding, sum_by_row
from recfunnel.schema import Schema


@register_model("din", kind="ranking")
class DIN(RankingModel):
    """Deep Interest Network (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction",
    KDD 2018, arXiv:1706.06978).

    Every Sequence input that shares a Categorical input's vocabulary (``Sequence("history",
    shares="item_id")``) is a behaviour sequence and that Categorical is its target: the
    behaviours are pooled by DIN's local activation unit against the target's embedding, with
    un-normalised weights as in the paper, instead of the mean pooling of other models. The
    pooled interests join the other field embeddings (the sequence itself is not mean-pooled
    again) in an MLP. Padding (index 0) never enters the attention.

    With ``use_history_sum`` (the default) the MLP also reads the plain sum of the behaviours and
    its element-wise product with the target, as the authors' released code does (Model_DIN in
    github.com/mouna99/dien, script/model.py): an MLP learns a product of two inputs poorly, and
    this one is the strongest signal for "the next item resembles the past ones" (on Amazon
    Beauty it lifts test AUC from 0.703 to 0.746; see benchmarks/din_beauty.py). False gives the
    paper's figure exactly.

    Args:
        schema: Input features with at least one Sequence sharing a Categorical input.
        embedding_dim: D, the size of every field embedding.
        hidden_units: Widths of the MLP tower (the paper's 200-80).
        attention_units: Hidden widths of the activation unit (the authors' code: 80-40).
        activation: Activation of the attention unit: "dice" (the paper's), "prelu", "sigmoid", ...
        dropout: Dropout probability after each hidden layer of the MLP.
        batch_norm: Batch normalisation in the MLP tower.
        use_history_sum: Also feed the MLP the summed behaviours and their product with the target.

    Raises:
        SchemaError: No Sequence input shares a Categorical input.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> DIN(toy_schema(), embedding_dim=4)(toy_batch(batch_size=8)).shape
        torch.Size([8])
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, hidden_units: tuple[int, ...] = (200, 80),
                 attention_units: tuple[int, ...] = (80, 40), activation: str = "dice", dropout: float = 0.0,
                 batch_norm: bool = False, use_history_sum: bool = True) -> None:
        super().__init__(schema)
        self.pairs = behaviour_pairs(schema.inputs, model="DIN")
        sequences = {sequence for sequence, _ in self.pairs}
        self.embedding = FeatureEmbedding([f for f in schema.inputs if f.name not in sequences], embedding_dim)
        self.targets = [self.embedding.order.index(target) for _, target in self.pairs]
        self.attention = nn.ModuleList(
            TargetAttention(embedding_dim, attention_units, activation=activation) for _ in self.pairs
        )
        self.use_history_sum = use_history_sum
        width = self.embedding.flat_dim + len(self.pairs) * embedding_dim * (3 if use_history_sum else 1)
        self.mlp = MLP(width, [*hidden_units, 1], dropout=dropout, batch_norm=batch_norm)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return logits of shape (B,); no sigmoid, because the task owns the link function."""
        fields = self.embedding(batch.features)                                    # (B, F, D)
        interests = []
        for (sequence, target), field, attention in zip(self.pairs, self.targets, self.attention, strict=True):
            rows, ids = nonpadding(batch.features[sequence])                        # (P,), (P,)
            behaviours = self.embedding.lookup(target, ids)                         # (P, D)
            interests.append(attention(behaviours, fields[:, field], rows))         # (B, D)
            if self.use_history_sum:
                summed = sum_by_row(behaviours, rows, len(fields))                  # (B, D)
                interests += [summed, summed * fields[:, field]]                     # (B, D) each
        return self.mlp(torch.cat([fields.flatten(1), *interests], dim=1)).squeeze(-1)  # (B,)
