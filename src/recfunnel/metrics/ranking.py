"""Top-K ranking metrics over (U, K) recommendation lists: recall, NDCG, hit rate, MRR, precision, coverage."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from recfunnel.errors import DataError

__all__ = [
    "grouped_ndcg",
    "coverage",
    "hit_rate_at_k",
    "hits_matrix",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_report",
    "recall_at_k",
]

#: One held-out item index per user (U,), -1 for none; or a binary CSR matrix (U, num_items).
Relevant: TypeAlias = ArrayLike | sparse.spmatrix | sparse.sparray


def _as_topk(topk: ArrayLike) -> np.ndarray:
    lists = np.asarray(topk)
    if lists.ndim != 2:
        raise DataError(
            f"topk must be a 2-D array of item indices with shape (U, K); got shape {lists.shape}."
        )
    if lists.dtype.kind not in "iu":
        raise DataError(f"topk must hold integer item indices (-1 for no item); got dtype {lists.dtype}.")
    lists = lists.astype(np.int64, copy=False)
    if lists.size and lists.min() < -1:
        raise DataError(f"topk holds {int(lists.min())}; item indices must be >= 0, or -1 for 'no item'.")
    return lists


def _as_csr(relevant: sparse.spmatrix | sparse.sparray, num_users: int) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix(relevant, copy=True)
    if matrix.shape[0] != num_users:
        raise DataError(
            f"relevant has {matrix.shape[0]} rows but topk has {num_users}; pass one row per user "
            "in the same order."
        )
    matrix.sum_duplicates()  # canonical form: sorted column indices within each row
    matrix.eliminate_zeros()
    return matrix


def _as_held_out(relevant: ArrayLike, num_users: int) -> np.ndarray:
    items = np.asarray(relevant)
    if items.ndim != 1 or items.dtype.kind not in "iu":
        raise DataError(
            "relevant must be a 1-D int array of shape (U,) (one held-out item per user, -1 for none) "
            f"or a scipy.sparse CSR matrix (U, num_items); got shape {items.shape}, dtype {items.dtype}."
        )
    if len(items) != num_users:
        raise DataError(
            f"relevant has {len(items)} rows but topk has {num_users}; pass one held-out item per user."
        )
    return items.astype(np.int64, copy=False)


def _sparse_hits(lists: np.ndarray, matrix: sparse.csr_matrix) -> np.ndarray:
    num_users, num_items = matrix.shape
    if lists.size and lists.max() >= num_items:
        raise DataError(
            f"topk holds item index {int(lists.max())} but relevant has only {num_items} columns (items)."
        )
    if matrix.nnz == 0:
        return np.zeros(lists.shape, dtype=bool)
    # Flatten (user, item) to one int64 key; CSR order makes the keys sorted, so every
    # lookup is a single vectorized searchsorted instead of a loop over users.
    rows = np.repeat(np.arange(num_users, dtype=np.int64), np.diff(matrix.indptr))
    keys = rows * num_items + matrix.indices.astype(np.int64)
    queries = np.arange(num_users, dtype=np.int64)[:, None] * num_items + lists  # (U, K)
    found = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return (keys[found] == queries) & (lists >= 0)


def _hits_and_counts(topk: ArrayLike, relevant: Relevant) -> tuple[np.ndarray, np.ndarray]:
    """Return the (U, K) hit matrix and the number of relevant items per user (U,)."""
    lists = _as_topk(topk)
    if sparse.issparse(relevant):
        matrix = _as_csr(relevant, lists.shape[0])
        return _sparse_hits(lists, matrix), np.diff(matrix.indptr)
    items = _as_held_out(relevant, lists.shape[0])
    hits = (lists == items[:, None]) & (lists >= 0)
    return hits, (items >= 0).astype(np.int64)


def hits_matrix(topk: ArrayLike, relevant: Relevant) -> np.ndarray:
    """Mark which recommended items are relevant.

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
            Items in a row are assumed distinct.
        relevant: Either one held-out item per user, int array (U,) with -1 for none, or a
            binary scipy.sparse CSR matrix (U, num_items) of relevant items.

    Returns:
        Boolean array (U, K): True where ``topk[u, j]`` is relevant to user u.

    Raises:
        DataError: If the shapes or dtypes do not match the description above.

    Example:
        >>> hits_matrix([[3, 1, -1], [0, 4, 5]], [1, 5]).tolist()
        [[False, True, False], [False, False, True]]
    """
    return _hits_and_counts(topk, relevant)[0]


def _check_k(k: int, num_columns: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer; got {k!r}.")
    if k > num_columns:
        raise DataError(
            f"k={k} but topk has only {num_columns} columns; recommend at least k items per user."
        )


def _recall(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / np.maximum(num_relevant, 1)


def _precision(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / k


def _hit(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits.any(axis=1), dtype=np.float64)


def _mrr(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def _ndcg(hits: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (K,)
    dcg = hits @ discounts
    ideal = np.cumsum(discounts)[np.clip(np.minimum(num_relevant, k) - 1, 0, None)]
    return dcg / ideal


_PER_USER: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "recall": _recall,
    "ndcg": _ndcg,
    "hit": _hit,
    "mrr": _mrr,
    "precision": _precision,
}


def _mean_over_users(values: np.ndarray, num_relevant: np.ndarray, name: str) -> float:
    has_relevant = num_relevant > 0
    if not has_relevant.any():
        warnings.warn(f"{name} is undefined: no user has a relevant item; returning nan.", stacklevel=3)
        return float("nan")
    return float(values[has_relevant].mean())


def _metric_at_k(topk: ArrayLike, relevant: Relevant, k: int, metric: str) -> float:
    hits, num_relevant = _hits_and_counts(topk, relevant)
    _check_k(k, hits.shape[1])
    values = _PER_USER[metric](hits[:, :k], num_relevant, k)
    return _mean_over_users(values, num_relevant, f"{metric}@{k}")


def recall_at_k(topk: ArrayLike, relevant: Relevant, k: int) -> float:
    """Share of each user's relevant items found in the first k, averaged over users.

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
        relevant: Held-out item per user (U,) with -1 for none, or binary CSR (U, num_items).
        k: Cut-off, 1 <= k <= K.

    Returns:
        Mean recall@k over users with at least one relevant item (nan and a warning if none).

    Raises:
        DataError: If shapes or dtypes are wrong or k is outside [1, K].

    Example:
        >>> round(recall_at_k([[3, 1, 2], [0, 4, 5], [7, 8, 9]], [1, 5, 6], k=3), 4)
        0.6667
    """
    return _metric_at_k(topk, relevant, k, "recall")


def precision_at_k(topk: ArrayLike, relevant: Relevant, k: int) -> float:
    """Share of the first k recommendations that are relevant (padding counts as a miss).

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
        relevant: Held-out item per user (U,) with -1 for none, or binary CSR (U, num_items).
        k: Cut-off, 1 <= k <= K.

    Returns:
        Mean precision@k over users with at least one relevant item (nan and a warning if none).

    Raises:
        DataError: If shapes or dtypes are wrong or k is outside [1, K].

    Example:
        >>> round(precision_at_k([[3, 1, 2], [0, 4, 5], [7, 8, 9]], [1, 5, 6], k=3), 4)
        0.2222
    """
    return _metric_at_k(topk, relevant, k, "precision")


def hit_rate_at_k(topk: ArrayLike, relevant: Relevant, k: int) -> float:
    """Share of users with at least one relevant item among their first k.

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
        relevant: Held-out item per user (U,) with -1 for none, or binary CSR (U, num_items).
        k: Cut-off, 1 <= k <= K.

    Returns:
        Mean hit@k over users with at least one relevant item (nan and a warning if none).

    Raises:
        DataError: If shapes or dtypes are wrong or k is outside [1, K].

    Example:
        >>> hit_rate_at_k([[3, 1, 2], [0, 4, 5], [7, 8, 9]], [1, 5, -1], k=2)
        0.5
    """
    return _metric_at_k(topk, relevant, k, "hit")


def mrr_at_k(topk: ArrayLike, relevant: Relevant, k: int) -> float:
    """Mean reciprocal rank of the first relevant item within the first k (0 if none).

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
        relevant: Held-out item per user (U,) with -1 for none, or binary CSR (U, num_items).
        k: Cut-off, 1 <= k <= K.

    Returns:
        Mean MRR@k over users with at least one relevant item (nan and a warning if none).

    Raises:
        DataError: If shapes or dtypes are wrong or k is outside [1, K].

    Example:
        >>> round(mrr_at_k([[3, 1, 2], [0, 4, 5], [7, 8, 9]], [1, 5, 6], k=3), 4)  # (1/2 + 1/3 + 0) / 3
        0.2778
    """
    return _metric_at_k(topk, relevant, k, "mrr")


def ndcg_at_k(topk: ArrayLike, relevant: Relevant, k: int) -> float:
    """Normalized discounted cumulative gain with binary relevance.

    DCG sums 1 / log2(rank + 1) over hits; the ideal DCG places min(k, num_relevant) hits
    at the top.

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
        relevant: Held-out item per user (U,) with -1 for none, or binary CSR (U, num_items).
        k: Cut-off, 1 <= k <= K.

    Returns:
        Mean NDCG@k over users with at least one relevant item (nan and a warning if none).

    Raises:
        DataError: If shapes or dtypes are wrong or k is outside [1, K].

    Example:
        >>> round(ndcg_at_k([[3, 1, 2], [0, 4, 5], [7, 8, 9]], [1, 5, 6], k=3), 4)  # (1/log2(3) + 1/2) / 3
        0.377
    """
    return _metric_at_k(topk, relevant, k, "ndcg")


def ranking_report(topk: ArrayLike, relevant: Relevant, ks: Sequence[int] = (10, 20, 50)) -> dict[str, float]:
    """Every top-K metric at every cut-off, sharing one hit matrix.

    Args:
        topk: Recommended item indices, best first, shape (U, K); -1 pads short lists.
        relevant: Held-out item per user (U,) with -1 for none, or binary CSR (U, num_items).
        ks: Cut-offs, each within [1, K].

    Returns:
        Keys "recall@k", "ndcg@k", "hit@k", "mrr@k" and "precision@k" for each k in ``ks``.

    Raises:
        DataError: If shapes or dtypes are wrong or some k is outside [1, K].

    Example:
        >>> report = ranking_report([[3, 1, 2], [0, 4, 5]], [1, 5], ks=(1, 2))
        >>> report["hit@1"], report["hit@2"], report["mrr@2"]
        (0.0, 0.5, 0.25)
    """
    hits, num_relevant = _hits_and_counts(topk, relevant)
    for k in ks:
        _check_k(k, hits.shape[1])
    report: dict[str, float] = {}
    for k in ks:
        for metric, per_user in _PER_USER.items():
            values = per_user(hits[:, :k], num_relevant, k)
            report[f"{metric}@{k}"] = _mean_over_users(values, num_relevant, f"{metric}@{k}")
    return report


def coverage(topk: ArrayLike, num_items: int) -> float:
    """Share of the catalogue that appears in at least one recommendation list.

    Args:
        topk: Recommended item indices, shape (U, K); -1 pads short lists.
        num_items: Catalogue size; item indices run from 0 to num_items - 1.

    Returns:
        Distinct recommended items / num_items, in [0, 1].

    Raises:
        DataError: If ``topk`` is malformed, ``num_items`` is not positive, or an index is
            >= num_items.

    Example:
        >>> coverage([[0, 1], [1, -1]], num_items=4)
        0.5
    """
    lists = _as_topk(topk)
    if isinstance(num_items, bool) or not isinstance(num_items, (int, np.integer)) or num_items < 1:
        raise DataError(f"num_items must be a positive integer; got {num_items!r}.")
    items = lists[lists >= 0]
    if items.size and items.max() >= num_items:
        raise DataError(f"topk holds item index {int(items.max())} but num_items={num_items}.")
    seen = np.zeros(num_items, dtype=bool)
    seen[items] = True
    return float(seen.sum() / num_items)


def grouped_ndcg(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None = None, k: int = 10) -> float:
    """Mean NDCG@k of each group's rows ranked by ``y_pred`` (binary gains ``y_true``), over the
    groups with at least one relevant row; one group when ``groups`` is None.

    One lexsort over (group, -score); no loop over groups.

    Example:
        >>> grouped_ndcg([1, 0, 0, 1], [0.9, 0.1, 0.8, 0.2], [0, 0, 1, 1])  # 1.0 and 1/log2(3)
        0.8154648767857288
    """
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    score = np.asarray(y_pred, dtype=np.float64).ravel()
    group = np.zeros(truth.size, np.int64) if groups is None else np.unique(np.asarray(groups).ravel(),
                                                                           return_inverse=True)[1]
    if truth.size == 0:
        return float("nan")
    order = np.lexsort((-score, group))
    group, hit = group[order], truth[order] > 0
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, group.size])
    place = np.arange(group.size) - np.repeat(starts, sizes)  # 0-based rank within the group
    discount = np.where(place < k, 1.0 / np.log2(place + 2.0), 0.0)
    dcg = np.add.reduceat(hit * discount, starts)
    relevant = np.add.reduceat(hit.astype(np.int64), starts)
    ideal = np.cumsum(np.r_[0.0, 1.0 / np.log2(np.arange(k) + 2.0)])[np.minimum(relevant, k)]
    has = relevant > 0
    return float((dcg[has] / ideal[has]).mean()) if has.any() else float("nan")
