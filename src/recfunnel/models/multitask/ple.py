"""PLE: task-specific and shared experts in stacked CGC layers (Tang et al., RecSys 2020)."""

from typing import Any

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import ConfigError
from recfunnel.models.base import MultiTaskModel, register_model
from recfunnel.nn import MLP
from recfunnel.nn.experts import CGC
from recfunnel.schema import Schema


@register_model("ple", kind="multitask")
class PLE(MultiTaskModel):
    """Progressive Layered Extraction of Tang, Liu, Zhao & Gong, "Progressive Layered Extraction
    (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys 2020:
    ``num_levels`` CGC layers, each with experts of every label's own and shared experts; a label's
    gate mixes its own and the shared ones, and the shared experts' gate feeds the next layer, so
    what is shared and what is kept apart is learnt level by level. One level is CGC alone.

    Args:
        schema: Input features and two or more Label specs; each label gets experts, gates and a tower.
        embedding_dim: D, the size of every field embedding.
        num_levels: CGC layers stacked.
        task_experts: Experts of each label's own, per level.
        shared_experts: Shared experts per level.
        expert_units: Widths of each expert (the last is the width the gates mix).
        tower_units: Hidden widths of each label's tower (its output is one logit).
        dropout: Dropout probability after each hidden layer.
        bottom: A ranking model whose feature interaction the first level's experts read
            instead of the field embeddings (e.g. "fm", or {"name": "deepfm", ...its options});
            see ``MultiTaskModel.build_input``.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> model = PLE(toy_schema(labels=("click", "buy")), embedding_dim=4)
        >>> {k: v.shape for k, v in model(toy_batch(batch_size=8)).items()}
        {'click': torch.Size([8]), 'buy': torch.Size([8])}
    """

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, num_levels: int = 2, task_experts: int = 2,
                 shared_experts: int = 2, expert_units: tuple[int, ...] = (64,),
                 tower_units: tuple[int, ...] = (64,), dropout: float = 0.0,
                 bottom: str | dict[str, Any] | None = None) -> None:
        super().__init__(schema)
        if num_levels < 1:
            raise ConfigError(f"ple num_levels must be >= 1; got {num_levels!r}.")
        self.label_names = [label.name for label in schema.labels]
        width = self.build_input(embedding_dim, bottom)
        if not expert_units:
            raise ConfigError("ple expert_units must name at least one layer width.")
        widths = [width] + [int(expert_units[-1])] * (num_levels - 1)
        self.levels = nn.ModuleList(
            CGC(width, tasks=len(self.label_names), task_experts=task_experts, shared_experts=shared_experts,
                units=expert_units, shared_gate=level < num_levels - 1, dropout=dropout)
            for level, width in enumerate(widths))
        self.towers = nn.ModuleDict({name: MLP(int(expert_units[-1]), [*tower_units, 1], dropout=dropout)
                                     for name in self.label_names})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return ``{label: logits (B,)}``."""
        x = self.shared_input(batch)  # (B, W)
        inputs: list[torch.Tensor] = [x] * len(self.label_names)
        shared: torch.Tensor | None = x
        for level in self.levels:
            assert shared is not None  # every level but the last passes its shared output on
            inputs, shared = level(inputs, shared)
        return self.read_out(x, {name: self.towers[name](out).squeeze(-1)
                                 for name, out in zip(self.label_names, inputs, strict=True)})
