"""Shared-Bottom: one network under every label, a small tower per label (Caruana, Machine Learning 1997)."""

from typing import Any

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.models.base import MultiTaskModel, register_model
from recfunnel.nn import MLP
from recfunnel.schema import Schema


@register_model("shared_bottom", kind="multitask")
class SharedBottom(MultiTaskModel):
    """Shared-Bottom multi-task model: field embeddings and a bottom MLP shared by every label,
    then one MLP tower per label (hard parameter sharing; Caruana, "Multitask Learning", 1997).

    Args:
        schema: Input features and two or more Label specs; each label gets a tower.
        embedding_dim: D, the size of every field embedding.
        bottom_units: Widths of the shared MLP.
        tower_units: Hidden widths of each label's tower (its output is one logit).
        dropout: Dropout probability after each hidden layer.
        bottom: A ranking model whose feature interaction the shared MLP read instead of the field
            embeddings (e.g. "fm", or {"name": "deepfm", ...its options});
            see ``MultiTaskModel.build_input``.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> model = SharedBottom(toy_schema(labels=("click", "buy")), embedding_dim=4)
        >>> {k: v.shape for k, v in model(toy_batch(batch_size=8)).items()}
        {'click': torch.Size([8]), 'buy': torch.Size([8])}
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, bottom_units: tuple[int, ...] = (256, 128),
                 tower_units: tuple[int, ...] = (64,), dropout: float = 0.0,
                 bottom: str | dict[str, Any] | None = None) -> None:
        super().__init__(schema)
        width = self.build_input(embedding_dim, bottom)
        self.bottom = MLP(width, bottom_units, dropout=dropout)
        self.towers = nn.ModuleDict(
            {label.name: MLP(bottom_units[-1], [*tower_units, 1], dropout=dropout) for label in schema.labels}
        )

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return ``{label: logits (B,)}``; no sigmoid, because the task owns the link function."""
        x = self.shared_input(batch)                                 # (B, W)
        shared = torch.relu(self.bottom(x))                          # (B, H)
        return self.read_out(x, {name: tower(shared).squeeze(-1) for name, tower in self.towers.items()})
