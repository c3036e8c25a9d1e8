"""Explicit feature-crossing blocks of the Deep & Cross Networks: CrossNet (v1) and CrossNetV2."""

from __future__ import annotations

import torch
from torch import nn


class CrossNet(nn.Module):
    """Cross layers of DCN (Wang et al., ADKDD 2017, arXiv:1708.05123).

    Each layer computes ``x_{l+1} = x0 * (x_l · w_l) + b_l + x_l`` with a vector ``w_l`` and a
    bias ``b_l`` of the input width, so L layers model crosses up to degree L + 1 with only
    2·L·d parameters.

    Args:
        input_dim: d, the width of x0.
        num_layers: L, the number of cross layers.

    Example:
        >>> CrossNet(6, num_layers=2)(torch.randn(3, 6)).shape
        torch.Size([3, 6])
    """

    def __init__(self, input_dim: int, num_layers: int) -> None:
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(input_dim) / input_dim**0.5) for _ in range(num_layers)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(input_dim)) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B, d)."""
        x = x0
        for weight, bias in zip(self.weights, self.biases, strict=True):
            x = x0 * (x @ weight).unsqueeze(-1) + bias + x  # (B, d)
        return x


class CrossNetV2(nn.Module):
    """Matrix cross layers of DCN-V2 (Wang et al., WWW 2021, arXiv:2008.13535).

    Each layer computes ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l``. With ``low_rank=r`` the d×d
    matrix is factorised as ``W_l = U_l V_lᵀ`` (U, V of shape d×r), which the paper finds keeps
    most of the quality at a fraction of the cost.

    Args:
        input_dim: d, the width of x0.
        num_layers: L, the number of cross layers.
        low_rank: r, or None for full-rank matrices.

    Example:
        >>> CrossNetV2(6, num_layers=2, low_rank=2)(torch.randn(3, 6)).shape
        torch.Size([3, 6])
    """

    def __init__(self, input_dim: int, num_layers: int, *, low_rank: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(input_dim, input_dim) if low_rank is None
            # V_lᵀ (no bias) then U_l with the bias b_l
            else nn.Sequential(nn.Linear(input_dim, low_rank, bias=False), nn.Linear(low_rank, input_dim))
            for _ in range(num_layers)
        )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B, d)."""
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x  # (B, d)
        return x
