"""Masked pooling of padded item histories (index -1 = padding)."""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, L, D) ``vectors`` over the positions where ``mask`` (B, L) is True.

    A row with no position left is the zero vector, so an empty history adds nothing.

    Example:
        >>> v = torch.tensor([[[1.0], [3.0], [9.0]], [[5.0], [7.0], [2.0]]])
        >>> masked_mean(v, torch.tensor([[True, True, False], [False, False, False]])).tolist()
        [[2.0], [0.0]]
    """
    weights = mask.to(vectors.dtype).unsqueeze(-1)                    # (B, L, 1)
    return (vectors * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, D)


def embed_history(table: nn.Embedding, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Look up a (B, L) history of item indices left-padded with -1 in a table with a padding row 0.

    Returns:
        ``(vectors (B, L, D), mask (B, L))``; the table has ``num_items + 1`` rows, item i at row i + 1.

    Example:
        >>> table = nn.Embedding(4, 2)
        >>> vectors, mask = embed_history(table, torch.tensor([[-1, 0, 2]]))
        >>> vectors.shape, mask.tolist()
        (torch.Size([1, 3, 2]), [[False, True, True]])
    """
    mask = history >= 0
    return table(history + 1), mask
