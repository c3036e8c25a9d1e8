"""DIEN: interest extraction GRU and attention-updated GRU (Zhou et al., AAAI 2019, arXiv:1809.03672)."""

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import ModelOutput, RankingModel, register_model
from recfunnel.nn import (
    MLP,
    FeatureEmbedding,
    InterestEvolution,
    behaviour_pairs,
    next_behaviour_loss,
    pack_history,
    sum_by_row,
)
from recfunnel.schema import Schema


@register_model("dien", kind="ranking")
class DIEN(RankingModel):
    """Deep Interest Evolution Network (Zhou et al., "Deep Interest Evolution Network for
    Click-Through Rate Prediction", AAAI 2019, arXiv:1809.03672).

    Each behaviour sequence (a Sequence input sharing a Categorical input's vocabulary, which is
    its target) passes through a GRU interest extractor; target attention over the extracted
    states drives an AUGRU (GRU with attentional update gate), whose final state joins the other
    field embeddings in an MLP. Padding is skipped, not fed to the recurrences. With
    ``use_history_sum`` (the default) the MLP also reads the summed behaviours and their
    element-wise product with the target, as the authors' code does (Model_DIN_V2_Gru_Vec_attGru_Neg
    in github.com/mouna99/dien, script/model.py).

    In training mode ``forward`` also sets ``self.auxiliary_loss``: the paper's auxiliary loss
    (each extracted state should score the next behaviour above a uniformly sampled item, by inner
    product) times ``auxiliary_weight``, which the Trainer adds to the task loss. It is None in
    evaluation mode or when ``auxiliary_weight`` is 0.

    Args:
        schema: Input features with at least one Sequence sharing a Categorical input.
        embedding_dim: D, the size of every field embedding and of the GRU states.
        hidden_units: Widths of the MLP tower (the paper's 200-80).
        attention_units: Hidden widths of the attention's activation unit.
        activation: Activation of the attention unit: "dice", "prelu", "sigmoid", ...
        auxiliary_weight: α, the weight of the auxiliary loss (the paper uses 1).
        dropout: Dropout probability after each hidden layer of the MLP.
        use_history_sum: Also feed the MLP the summed behaviours and their product with the target.

    Raises:
        SchemaError: No Sequence input shares a Categorical input.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> model = DIEN(toy_schema(), embedding_dim=4)
        >>> logits, auxiliary_loss = model(toy_batch(batch_size=8))  # training mode: a ModelOutput
        >>> logits.shape, auxiliary_loss.shape, model.eval()(toy_batch(batch_size=8)).shape
        (torch.Size([8]), torch.Size([]), torch.Size([8]))
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, hidden_units: tuple[int, ...] = (200, 80),
                 attention_units: tuple[int, ...] = (80, 40), activation: str = "dice",
                 auxiliary_weight: float = 1.0, dropout: float = 0.0, use_history_sum: bool = True) -> None:
        super().__init__(schema)
        self.pairs = behaviour_pairs(schema.inputs, model="DIEN")
        sequences = {sequence for sequence, _ in self.pairs}
        self.embedding = FeatureEmbedding([f for f in schema.inputs if f.name not in sequences], embedding_dim)
        self.targets = [self.embedding.order.index(target) for _, target in self.pairs]
        # negatives of the auxiliary loss: known items, indices 2 .. vocab_size - 1 (0 pads, 1 is OOV)
        self.num_items = [schema[target].vocab_size or 2 for _, target in self.pairs]  # type: ignore[union-attr]
        self.interest = nn.ModuleList(
            InterestEvolution(embedding_dim, attention_units, activation=activation) for _ in self.pairs
        )
        self.use_history_sum = use_history_sum
        width = self.embedding.flat_dim + len(self.pairs) * embedding_dim * (3 if use_history_sum else 1)
        self.mlp = MLP(width, [*hidden_units, 1], dropout=dropout)
        self.auxiliary_weight = auxiliary_weight

    def forward(self, batch: Batch) -> torch.Tensor | ModelOutput:
        """Return logits of shape (B,), no sigmoid; in training, with the auxiliary loss next to them."""
        fields = self.embedding(batch.features)                                      # (B, F, D)
        interests, auxiliary = [], []
        for (sequence, target), field, block, num_items in zip(
                self.pairs, self.targets, self.interest, self.num_items, strict=True):
            packed = pack_history(batch.features[sequence])
            behaviours = self.embedding.lookup(target, packed.ids)                    # (P, D)
            interest, states = block(behaviours, fields[:, field], packed)            # (B, D), (P, D)
            interests.append(interest)
            if self.use_history_sum:
                summed = sum_by_row(behaviours, packed.rows, len(fields))              # (B, D)
                interests += [summed, summed * fields[:, field]]                       # (B, D) each
            if self.training and self.auxiliary_weight > 0:
                sampled = torch.randint(min(2, num_items - 1), num_items, packed.ids.shape, device=fields.device)
                negatives = self.embedding.lookup(target, sampled)                    # (P, D)
                auxiliary.append(next_behaviour_loss(states, behaviours, negatives, packed))
        logits = self.mlp(torch.cat([fields.flatten(1), *interests], dim=1)).squeeze(-1)  # (B,)
        if not auxiliary:
            return logits
        return ModelOutput(logits, self.auxiliary_weight * torch.stack(auxiliary).sum())
