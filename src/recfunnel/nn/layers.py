"""Dense building blocks: dropout, MLP and the factorization machine's pairwise term."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfunnel.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "prelu": nn.PReLU}


class Dropout(nn.Module):
    """Inverted dropout that draws its mask with ``uniform_`` instead of ``bernoulli_``.

    Same result in distribution as ``torch.nn.Dropout``: in training each element is zeroed with
    probability ``p`` and the rest are scaled by 1/(1 − p); in eval it is the identity. On CPU
    ``bernoulli_`` samples element by element and took about a fifth of a DeepFM training step at
    batch 1024; a uniform draw compared with ``p`` is about twice as fast
    (``benchmarks/rank_zoo.py``, BENCHMARKS.md).

    Args:
        p: Probability of zeroing an element, in [0, 1).

    Raises:
        ConfigError: ``p`` is outside [0, 1).

    Example:
        >>> drop = Dropout(0.5).train()
        >>> out = drop(torch.ones(1000))
        >>> sorted(set(out.tolist()))
        [0.0, 2.0]
        >>> bool(drop.eval()(torch.ones(3)).eq(1).all())
        True
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout={p!r} is not valid; expected a probability in [0, 1).")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Any shape -> same shape."""
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).uniform_().ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    """Linear layers with activation (and optional batch norm, dropout) between them.

    The last layer is linear with no activation, so ``MLP(d, [400, 400, 1])`` returns logits.

    Args:
        input_dim: Width of the input.
        units: Output width of each layer; the last one is the output width.
        dropout: Dropout probability after each hidden activation.
        activation: One of "relu", "gelu", "tanh", "sigmoid", "prelu".
        batch_norm: Insert BatchNorm1d before each hidden activation.

    Example:
        >>> MLP(8, [16, 1])(torch.zeros(3, 8)).shape
        torch.Size([3, 1])
    """

    def __init__(self, input_dim: int, units: Sequence[int], *, dropout: float = 0.0,
                 activation: str = "relu", batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for i, out in enumerate(units):
            layers.append(nn.Linear(width, out))
            if i < len(units) - 1:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(out))
                layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(Dropout(dropout))
            width = out
        self.net = nn.Sequential(*layers)
        self.output_dim = width
        self.hidden_dim = int(units[-2]) if len(units) > 1 else input_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, input_dim) -> (B, units[-1])."""
        return self.net(x)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """(B, input_dim) -> (B, hidden_dim): every layer but the last, linear one (the input
        itself for a one-layer MLP), so ``forward(x)`` is a linear map of ``hidden(x)``."""
        return self.net[:-1](x)


class FactorizationMachine(nn.Module):
    """Sum of pairwise inner products of field vectors in O(F·D): ½·Σ_d[(Σ_f v)² − Σ_f v²].

    Example:
        >>> v = torch.randn(2, 3, 4)
        >>> brute = sum((v[:, i] * v[:, j]).sum(-1) for i in range(3) for j in range(i + 1, 3))
        >>> torch.allclose(FactorizationMachine()(v), brute, atol=1e-6)
        True
    """

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, F, D) -> (B,)."""
        square_of_sum = fields.sum(dim=1).pow(2)   # (B, D)
        sum_of_square = fields.pow(2).sum(dim=1)   # (B, D)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)
