"""MMoE: experts shared by every label, mixed for each label by its own gate (Ma et al., KDD 2018)."""

from typing import Any

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import MultiTaskModel, register_model
from recfunnel.nn import MLP
from recfunnel.nn.experts import Experts, Gate
from recfunnel.schema import Schema


@register_model("mmoe", kind="multitask")
class MMoE(MultiTaskModel):
    """Multi-gate Mixture-of-Experts of Ma, Zhao, Yi, Chen, Hong & Chi, "Modeling Task
    Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018: the field
    embeddings feed ``num_experts`` expert MLPs; each label's softmax gate mixes their outputs for
    that label's tower, so labels that disagree can lean on different experts.

    Args:
        schema: Input features and two or more Label specs; each label gets a gate and a tower.
        embedding_dim: D, the size of every field embedding.
        num_experts: Expert MLPs shared by the labels.
        expert_units: Widths of each expert (the last is the width the gates mix).
        tower_units: Hidden widths of each label's tower (its output is one logit).
        dropout: Dropout probability after each hidden layer.
        bottom: A ranking model whose feature interaction the experts and gates read instead of
            the field embeddings (e.g. "fm", or {"name": "deepfm", ...its options});
            see ``MultiTaskModel.build_input``.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> model = MMoE(toy_schema(labels=("click", "buy")), embedding_dim=4)
        >>> {k: v.shape for k, v in model(toy_batch(batch_size=8)).items()}
        {'click': torch.Size([8]), 'buy': torch.Size([8])}
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, num_experts: int = 4,
                 expert_units: tuple[int, ...] = (128, 64), tower_units: tuple[int, ...] = (64,),
                 dropout: float = 0.0,
                 bottom: str | dict[str, Any] | None = None) -> None:
        super().__init__(schema)
        width = self.build_input(embedding_dim, bottom)
        self.experts = Experts(width, count=num_experts, units=expert_units, dropout=dropout)
        self.gates = nn.ModuleDict({label.name: Gate(width, count=num_experts) for label in schema.labels})
        self.towers = nn.ModuleDict({label.name: MLP(self.experts.output_dim, [*tower_units, 1], dropout=dropout)
                                     for label in schema.labels})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return ``{label: logits (B,)}``."""
        x = self.shared_input(batch)                           # (B, W)
        outputs = self.experts(x)                              # (B, E, H)
        return self.read_out(x, {name: self.towers[name](gate(x, outputs)).squeeze(-1)
                                 for name, gate in self.gates.items()})
