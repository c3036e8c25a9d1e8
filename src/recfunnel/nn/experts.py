"""Mixtures of experts for multi-task models: expert MLPs, softmax gates, and PLE's CGC layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfunnel.errors import ConfigError
from recfunnel.nn.layers import MLP


class Experts(nn.Module):
    """``count`` MLPs over the same input, each ending in a ReLU: (B, F) -> (B, count, H).

    Example:
        >>> Experts(8, count=3, units=(16, 4))(torch.zeros(2, 8)).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, input_dim: int, *, count: int, units: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        if count < 1 or not units:
            raise ConfigError(f"experts need count >= 1 and at least one layer width; got {count!r}, {units!r}.")
        self.nets = nn.ModuleList(MLP(input_dim, list(units), dropout=dropout) for _ in range(count))
        self.output_dim = int(units[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.relu(net(x)) for net in self.nets], 1)


class Gate(nn.Module):
    """A softmax over ``count`` experts computed from the input, and the experts' mixture by it:
    ``gate(x, outputs (B, count, H)) -> (B, H)``; ``weights(x)`` gives the (B, count) mix.

    Example:
        >>> gate = Gate(8, count=3)
        >>> gate(torch.zeros(2, 8), torch.ones(2, 3, 4)).shape, gate.weights(torch.zeros(2, 8)).sum(1).tolist()
        (torch.Size([2, 4]), [1.0, 1.0])
    """

    def __init__(self, input_dim: int, *, count: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, count)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), -1)

    def forward(self, x: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return (self.weights(x).unsqueeze(-1) * outputs).sum(1)


class CGC(nn.Module):
    """Customized Gate Control, one extraction layer of PLE (Tang et al., RecSys 2020): each task
    has its own experts and a gate over them and the shared experts; the shared experts' own gate,
    over every expert, feeds the next layer (``shared_gate``, all layers but the last).

    ``forward(task_inputs, shared_input) -> (task_outputs, shared_output or None)``, every input
    and output (B, F) or (B, H).

    Example:
        >>> layer = CGC(8, tasks=2, task_experts=1, shared_experts=2, units=(4,), shared_gate=True)
        >>> outs, shared = layer([torch.zeros(3, 8)] * 2, torch.zeros(3, 8))
        >>> [o.shape for o in outs], shared.shape
        ([torch.Size([3, 4]), torch.Size([3, 4])], torch.Size([3, 4]))
    """

    def __init__(self, input_dim: int, *, tasks: int, task_experts: int, shared_experts: int,
                 units: Sequence[int], shared_gate: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.own = nn.ModuleList(Experts(input_dim, count=task_experts, units=units, dropout=dropout)
                                 for _ in range(tasks))
        self.shared = Experts(input_dim, count=shared_experts, units=units, dropout=dropout)
        self.gates = nn.ModuleList(Gate(input_dim, count=task_experts + shared_experts) for _ in range(tasks))
        self.shared_gate = Gate(input_dim, count=tasks * task_experts + shared_experts) if shared_gate else None
        self.output_dim = self.shared.output_dim

    def forward(self, task_inputs: Sequence[torch.Tensor],
                shared_input: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        shared = self.shared(shared_input)                                   # (B, S, H)
        own = [experts(x) for experts, x in zip(self.own, task_inputs, strict=True)]
        outputs = [gate(x, torch.cat([mine, shared], 1))
                   for gate, x, mine in zip(self.gates, task_inputs, own, strict=True)]
        if self.shared_gate is None:
            return outputs, None
        return outputs, self.shared_gate(shared_input, torch.cat([*own, shared], 1))
