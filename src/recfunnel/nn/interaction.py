"""Field-interaction blocks: NFM's bi-interaction pooling and PNN's inner and outer products."""

from __future__ import annotations

import torch
from torch import nn


class BiInteraction(nn.Module):
    """Bi-interaction pooling of NFM: Σ_{i<j} v_i ⊙ v_j computed as ½·[(Σ_f v)² − Σ_f v²] in O(F·D).

    ``FactorizationMachine`` is this vector summed over D; NFM keeps the D components and feeds
    them to an MLP (He & Chua, SIGIR 2017, arXiv:1708.05027, Eq. 4).

    Example:
        >>> v = torch.randn(2, 3, 4)
        >>> brute = sum(v[:, i] * v[:, j] for i in range(3) for j in range(i + 1, 3))
        >>> torch.allclose(BiInteraction()(v), brute, atol=1e-6)
        True
    """

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, F, D) -> (B, D)."""
        square_of_sum = fields.sum(dim=1).pow(2)   # (B, D)
        sum_of_square = fields.pow(2).sum(dim=1)   # (B, D)
        return 0.5 * (square_of_sum - sum_of_square)


def pairwise_inner_products(fields: torch.Tensor) -> torch.Tensor:
    """Inner product of every field pair i < j, in row-major order: (B, F, D) -> (B, F(F-1)/2).

    Example:
        >>> pairwise_inner_products(torch.tensor([[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]]])).tolist()
        [[2.0, 0.0, 3.0]]
    """
    rows, cols = torch.triu_indices(fields.shape[1], fields.shape[1], offset=1, device=fields.device)
    return (fields[:, rows] * fields[:, cols]).sum(-1)


def pooled_outer_product(fields: torch.Tensor) -> torch.Tensor:
    """Outer product of the summed field vectors, PNN's sum-pooling trick: (B, F, D) -> (B, D*D)."""
    total = fields.sum(1)                                                 # (B, D)
    return (total.unsqueeze(2) * total.unsqueeze(1)).flatten(1)           # (B, D*D)
