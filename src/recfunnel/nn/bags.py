"""Weighted bags of table rows over CSR rows: SVD++'s rated items, AutoRec's raters.

A bag is one CSR row: the codes of a user's rated items (SVD++) or of an item's raters (AutoRec),
each with a weight. ``bag_product`` sums them by a sparse (bags x distinct codes) product over the
distinct codes' rows, looked up once, so a sparse table's gradient has a row per distinct code
rather than one per entry (an ``EmbeddingBag``'s: ~100x more rows to sort and add on ratings data).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def csr_positions(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The entry positions of CSR ``rows`` (-1: an empty bag), concatenated, and each bag's offset.

    Example:
        >>> positions, offsets = csr_positions(torch.tensor([0, 2, 3]), torch.tensor([1, -1, 0]))
        >>> positions.tolist(), offsets.tolist()
        ([2, 0, 1], [0, 1, 1])
    """
    safe = rows.clamp_min(0)
    starts = indptr[safe]
    lengths = torch.where(rows >= 0, indptr[safe + 1] - starts, 0)
    offsets = torch.cumsum(lengths, 0) - lengths
    total = int(lengths.sum())
    return torch.repeat_interleave(starts - offsets, lengths, output_size=total) + torch.arange(total, device=rows.device), offsets


def csr_bags(indptr: torch.Tensor, codes: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The bags of CSR ``rows`` (-1: an empty bag): (flat codes, offsets, per-entry weights
    |bag|^-1/2, SVD++'s normalisation).

    Example:
        >>> flat, offsets, weights = csr_bags(torch.tensor([0, 2, 3]), torch.tensor([5, 6, 7]), torch.tensor([1, -1, 0]))
        >>> flat.tolist(), offsets.tolist(), [round(w, 3) for w in weights.tolist()]
        ([7, 5, 6], [0, 1, 1], [1.0, 0.707, 0.707])
    """
    positions, offsets = csr_positions(indptr, rows)
    lengths = torch.diff(offsets, append=offsets.new_tensor([len(positions)]))
    weights = torch.repeat_interleave(lengths.clamp_min(1).float().rsqrt(), lengths, output_size=len(positions))
    return codes[positions], offsets, weights


def bag_product(table: nn.Embedding, flat: torch.Tensor, offsets: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(bags, D) the weighted sums of ``table``'s rows over each bag, and (bags,) each bag's
    unweighted sum of its rows' squared norms (an L2 penalty on what the bag used).

    Example:
        >>> table = nn.Embedding(4, 2)
        >>> sums, _ = bag_product(table, torch.tensor([1, 3, 1]), torch.tensor([0, 2]), torch.tensor([1., 2., 3.]))
        >>> torch.allclose(sums, torch.stack([table.weight[1] + 2 * table.weight[3], 3 * table.weight[1]]))
        True
    """
    distinct, column = torch.unique(flat, return_inverse=True)
    ends = torch.cat([offsets, offsets.new_tensor([len(flat)])])
    rows = table(distinct)
    bags = torch.sparse_csr_tensor(ends, column, weights, size=(len(offsets), len(distinct)), check_invariants=False)
    members = torch.sparse_csr_tensor(ends, column, torch.ones_like(weights), size=bags.shape, check_invariants=False)
    return bags @ rows, (members @ rows.square().sum(1, keepdim=True)).squeeze(1)


class _FixedProduct(torch.autograd.Function):
    """``matrix @ rows`` whose backward uses a transpose computed once, not one per call."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, matrix: torch.Tensor, transposed: torch.Tensor) -> torch.Tensor:
        ctx.transposed = transposed
        return matrix @ rows

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.transposed @ grad, None, None


class FixedBags:
    """Every bag of a CSR matrix at once (all training users' rated items, say), its transposes
    built once: a step that holds most users sums all their bags in two sparse products and no
    sort, where ``bag_product`` over per-step bags must transpose its matrix in every backward
    (the sort that dominated an SVD++ step on MovieLens).

    Args:
        indptr, codes, weights: The CSR rows (bags), their table codes and weights.

    Example:
        >>> table = nn.Embedding(4, 2)
        >>> bags = FixedBags(torch.tensor([0, 2, 3]), torch.tensor([1, 3, 1]), torch.tensor([1., 2., 3.]))
        >>> sums, norms = bags(table)
        >>> flat_sums, flat_norms = bag_product(table, torch.tensor([1, 3, 1]), torch.tensor([0, 2]), torch.tensor([1., 2., 3.]))
        >>> torch.allclose(sums, flat_sums) and torch.allclose(norms, flat_norms)
        True
    """

    def __init__(self, indptr: torch.Tensor, codes: torch.Tensor, weights: torch.Tensor) -> None:
        self.distinct, column = torch.unique(codes, return_inverse=True)
        shape = (len(indptr) - 1, len(self.distinct))
        self.weighted = torch.sparse_csr_tensor(indptr, column, weights, size=shape, check_invariants=False)
        self.members = torch.sparse_csr_tensor(indptr, column, torch.ones_like(weights), size=shape, check_invariants=False)
        self.weighted_t = self.weighted.t().to_sparse_csr()
        self.members_t = self.members.t().to_sparse_csr()

    def __len__(self) -> int:
        return int(self.weighted.shape[0])

    def to(self, device: torch.device) -> FixedBags:
        """The same bags on ``device``."""
        moved = copy.copy(self)
        for name in ("distinct", "weighted", "members", "weighted_t", "members_t"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved

    def __call__(self, table: nn.Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """(bags, D) weighted sums of every bag, (bags,) each bag's sum of squared norms."""
        rows = table(self.distinct)
        sums = _FixedProduct.apply(rows, self.weighted, self.weighted_t)
        norms = _FixedProduct.apply(rows.square().sum(1, keepdim=True), self.members, self.members_t)
        return sums, norms.squeeze(1)
