"""Weighted bags of table rows over CSR rows: SVD++'s rated items, AutoRec's raters.

A bag is one CSR row: the codes of a user's rated items (SVD++) or of an item's raters (AutoRec),
each with a weight. ``bag_product`` sums them by a sparse (bags x distinct codes) product over the
distinct codes' rows, looked up once, so a sparse table's gradient has a row per distinct code
rather than one per entry (an ``EmbeddingBag``'s: ~100x more rows to sort and add on ratings data).
"""

from __future__ import annotations

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
    return torch.repeat_interleave(starts - offsets, lengths, output_size=total) + torch.arange(total), offsets


def csr_bags(indptr: torch.Tensor, codes: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The bags of CSR ``rows`` (-1: an empty bag): (flat codes, offsets, per-entry weights
    |bag|^-1/2, SVD++'s normalisation).

    Example:
        >>> flat, offsets, weights = csr_bags(torch.tensor([0, 2, 3]), torch.tensor([5, 6, 7]), torch.tensor([1, -1, 0]))
        >>> flat.tolist(), offsets.tolist(), [round(w, 3) for w in weights.tolist()]
        ([7, 5, 6], [0, 1, 1], [1.0, 0.707, 0.707])
    """
    positions, offsets = csr_positions(indptr, rows)
    lengths = torch.diff(offsets, append=torch.tensor([len(positions)]))
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
    ends = torch.cat([offsets, torch.tensor([len(flat)])])
    rows = table(distinct)
    bags = torch.sparse_csr_tensor(ends, column, weights, size=(len(offsets), len(distinct)))
    members = torch.sparse_csr_tensor(ends, column, torch.ones_like(weights), size=bags.shape)
    return bags @ rows, (members @ rows.square().sum(1, keepdim=True)).squeeze(1)
