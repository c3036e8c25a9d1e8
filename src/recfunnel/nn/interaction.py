"""Field-interaction blocks: NFM's bi-interaction, PNN's inner and outer products, FFM's field-aware pairs."""

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


class FieldAwareInteraction(nn.Module):
    """Pairwise term of the field-aware FM (Juan et al., "Field-aware Factorization Machines for
    CTR Prediction", RecSys 2016): Σ_{i<j} <v_{i,f_j}, v_{j,f_i}>.

    The input holds, for each field i, one D-dim vector per other field: ``[:, i, j]`` is
    v_{i,f_j}, the vector field i's value uses when it meets field j. The F(F-1)/2 pairs are
    gathered at once through index tensors built here, not looped over per batch.

    Args:
        num_fields: F.

    Example:
        >>> v = torch.randn(2, 3, 3, 4)
        >>> brute = sum((v[:, i, j] * v[:, j, i]).sum(-1) for i in range(3) for j in range(i + 1, 3))
        >>> torch.allclose(FieldAwareInteraction(3)(v), brute, atol=1e-6)
        True
    """

    def __init__(self, num_fields: int) -> None:
        super().__init__()
        rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
        self.rows: torch.Tensor
        self.cols: torch.Tensor
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, F, F, D) -> (B,)."""
        left = fields[:, self.rows, self.cols]    # (B, P, D): v_{i,f_j} for every pair i < j
        right = fields[:, self.cols, self.rows]   # (B, P, D): v_{j,f_i}
        return (left * right).sum(dim=(1, 2))
