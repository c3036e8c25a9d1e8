"""Exact top-k: a batched matmul and ``torch.topk``, with per-row exclusions from a CSR matrix."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from recfunnel.errors import ConfigError, DataError

METRICS = ("dot", "cosine")


def topk_static(scores: torch.Tensor, order: np.ndarray, k: int,
                exclude: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of one score row (N,) shared by every user, skipping each user's excluded columns.

    ``order`` is the columns by descending score. Only the first ``k`` + (most exclusions of a
    row) columns of that order are read, so a request does not touch the whole catalogue.

    Returns:
        (values (B, k) with -inf where a row runs out, indices (B, k) with -1 there).

    Example:
        >>> ex = sparse.csr_matrix(np.array([[0, 1, 0], [0, 0, 0]]))
        >>> topk_static(torch.tensor([0.1, 0.9, 0.5]), np.array([1, 2, 0]), 2, ex)[1].tolist()
        [[2, 0], [1, 2]]
    """
    rows, cols = exclude.shape
    depth = min(cols, k + int(np.diff(exclude.indptr).max(initial=0)))
    head = np.broadcast_to(order[:depth], (rows, depth))  # (B, depth)
    blocked = np.asarray(exclude[np.repeat(np.arange(rows), depth), head.ravel()]).reshape(rows, depth) != 0 \
        if exclude.nnz else np.zeros((rows, depth), bool)
    first = np.argsort(blocked, axis=1, kind="stable")[:, :k]  # unblocked columns first, in score order
    items = np.take_along_axis(head, first, 1)
    gone = np.take_along_axis(blocked, first, 1)
    values = scores.numpy()[items]
    items, values = np.where(gone, -1, items), np.where(gone, -np.inf, values)
    if items.shape[1] < k:  # pad to k columns so callers always get (B, k)
        pad = k - items.shape[1]
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
    return values.astype(np.float32), items.astype(np.int64)


def topk_excluding(scores: torch.Tensor, k: int,
                   exclude: sparse.csr_matrix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` columns of each row of ``scores`` (B, N), skipping the columns ``exclude`` marks.

    Excluded or missing places (fewer than ``k`` columns left) come back as index -1 with score
    -inf. ``scores`` is modified in place.

    Example:
        >>> s = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
        >>> ex = sparse.csr_matrix(np.array([[0, 1, 0], [0, 0, 0]]))
        >>> topk_excluding(s, 2, ex)[1].tolist()
        [[2, 0], [0, 1]]
    """
    rows, cols = scores.shape
    if exclude is not None and exclude.nnz:
        if exclude.shape != (rows, cols):
            raise DataError(f"exclude has shape {exclude.shape}; expected {(rows, cols)} like the scores.")
        row_index = np.repeat(np.arange(rows), np.diff(exclude.indptr))
        scores[torch.from_numpy(row_index), torch.from_numpy(exclude.indices.astype(np.int64))] = -torch.inf
    values, indices = torch.topk(scores, min(k, cols), dim=1)
    indices[torch.isneginf(values)] = -1
    if k > cols:  # pad to k columns so callers always get (B, k)
        pad = k - cols
        values = torch.cat([values, values.new_full((rows, pad), -torch.inf)], 1)
        indices = torch.cat([indices, indices.new_full((rows, pad), -1)], 1)
    return values, indices


class ExactIndex:
    """Brute-force maximum inner product (or cosine) search over item vectors.

    Args:
        vectors: Item vectors (N, D).
        metric: "dot" (inner product) or "cosine".
        batch_size: Queries per matmul, bounding memory to ``batch_size * N`` scores.

    Example:
        >>> index = ExactIndex(torch.eye(3))
        >>> index.search(torch.tensor([[0.0, 2.0, 1.0]]), 2)[1].tolist()
        [[1, 2]]
    """

    def __init__(self, vectors: torch.Tensor, *, metric: str = "dot", batch_size: int = 1024) -> None:
        if metric not in METRICS:
            raise ConfigError(f"index metric {metric!r} is not valid; expected one of {list(METRICS)}.")
        if vectors.ndim != 2:
            raise DataError(f"item vectors must be 2-D (N, D); got shape {tuple(vectors.shape)}.")
        self.metric, self.batch_size = metric, batch_size
        self.vectors = _normalise(vectors.float()) if metric == "cosine" else vectors.float()

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @torch.inference_mode()
    def search(self, queries: torch.Tensor, k: int,
               exclude: sparse.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), each (B, k), best first; -1 / -inf where fewer than k items are left.

        ``queries`` is (B, D), or (B, H, D) for several vectors per query (multi-interest users):
        an item then scores its best match over the H vectors.
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1; got {k}.")
        queries = queries.float()
        if self.metric == "cosine":
            queries = _normalise(queries)
        if queries.shape[-1] != self.vectors.shape[1]:
            raise DataError(f"queries have dimension {queries.shape[-1]}; the index holds {self.vectors.shape[1]}.")
        out_scores, out_items = [], []
        for start in range(0, len(queries), self.batch_size):
            chunk = queries[start:start + self.batch_size]
            scores = chunk @ self.vectors.T if chunk.ndim == 2 else (chunk @ self.vectors.T).amax(1)
            part = exclude[start:start + len(chunk)] if exclude is not None else None
            values, items = topk_excluding(scores, k, part)
            out_scores.append(values.numpy())
            out_items.append(items.numpy())
        if not out_scores:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        return np.concatenate(out_scores), np.concatenate(out_items)


def _normalise(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
