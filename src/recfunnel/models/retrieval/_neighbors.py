"""Top-k item neighbours from co-occurrence, computed in blocks so memory stays O(nnz + items * k)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

SIMILARITIES = ("cosine", "jaccard")


def item_neighbors(matrix: sparse.spmatrix, *, similarity: str = "cosine", neighbors: int = 100,
                   shrinkage: float = 0.0, block_nnz: int = 1 << 21) -> sparse.csr_matrix:
    """Each item's top-``neighbors`` most similar items, from a (users, items) interaction matrix.

    The co-occurrence counts X.T @ X are built a block of items at a time, each block holding
    about ``block_nnz`` products, and only each row's top k survive its block, so memory stays
    O(nnz(X) + items * k) whatever the catalogue size. Ties are broken by the lower item index.

    Returns:
        (items, items) CSR: row i holds i's neighbours j != i and their similarity, best first.
    """
    x = sparse.csr_matrix(matrix, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0  # co-occurrence of the binary matrix
    xt = sparse.csr_matrix(x.T)  # (items, users)
    num_items, count = xt.shape[0], np.diff(xt.indptr).astype(np.float64)
    work = np.minimum(xt @ np.diff(x.indptr).astype(np.float64), num_items)  # products per item row
    cum = np.cumsum(work)
    cuts = np.searchsorted(cum, np.arange(block_nnz, cum[-1] if num_items else 0, block_nnz), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [num_items]]))
    columns, values, lengths = [], [], []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):  # blocks of items, not rows
        block = sparse.csr_matrix(xt[start:end] @ x)  # (b, items) co-occurrence counts
        block.sort_indices()  # equal similarities then keep the lower item first
        rows = np.repeat(np.arange(start, end), np.diff(block.indptr))
        cols, n = block.indices, block.data.astype(np.float64)
        off_diagonal = rows != cols
        rows, cols, n = rows[off_diagonal], cols[off_diagonal], n[off_diagonal]
        if similarity == "cosine":
            sim = n / np.sqrt(count[rows] * count[cols])
        else:
            sim = n / (count[rows] + count[cols] - n)
        if shrinkage > 0:
            sim *= n / (n + shrinkage)  # Bellogín-style: few co-occurrences, less trust
        # one stable sort by (row, -similarity): similarities lie in [0, 1], rows are integers
        order = np.argsort((rows - start) * 2.0 + (1.0 - np.clip(sim, 0.0, 1.0)), kind="stable")
        per_row = np.bincount(rows - start, minlength=end - start)
        rank = np.arange(len(order)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        top = order[rank < neighbors]
        columns.append(cols[top].astype(np.int32))
        values.append(sim[top].astype(np.float32))
        lengths.append(np.minimum(per_row, neighbors))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    return sparse.csr_matrix((np.concatenate(values), np.concatenate(columns), indptr),
                             shape=(num_items, num_items))
