"""Approximate top-k with faiss (flat, IVF, HNSW) behind the same ``search`` as ExactIndex."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import sparse

from recfunnel.errors import ConfigError, DataError

KINDS = ("flat", "ivf", "hnsw")


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ImportError("the faiss index needs faiss: pip install 'recfunnel[ann]' (faiss-cpu).") from None
    return faiss


class FaissIndex:
    """Inner-product (or cosine) search with faiss.

    Args:
        vectors: Item vectors (N, D).
        kind: "flat" (exact, faiss's BLAS kernels), "ivf" (inverted lists over k-means cells) or
            "hnsw" (a navigable small-world graph).
        metric: "dot" or "cosine".
        nlist: IVF cells; default about 4 * sqrt(N).
        nprobe: IVF cells visited per query (recall vs speed).
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW candidate list size per query (recall vs speed); raised to the search
            depth when a query asks for more items than that.

    Exclusions (seen items) are applied after the search: each query asks faiss for ``k`` plus
    the most items any query in the batch excludes, so the k returned are never short because
    of them.

    Example:
        >>> index = FaissIndex(torch.eye(4), kind="flat")
        >>> index.search(torch.tensor([[0.0, 1.0, 0.5, 0.0]]), 2)[1].tolist()
        [[1, 2]]
    """

    def __init__(self, vectors: torch.Tensor, *, kind: str = "hnsw", metric: str = "dot",
                 nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32, ef_search: int = 128) -> None:
        faiss = _faiss()
        if kind not in KINDS:
            raise ConfigError(f"faiss index kind {kind!r} is not valid; expected one of {list(KINDS)}.")
        if metric not in ("dot", "cosine"):
            raise ConfigError(f"index metric {metric!r} is not valid; expected 'dot' or 'cosine'.")
        data = np.ascontiguousarray(vectors.detach().float().cpu().numpy())
        if data.ndim != 2 or len(data) == 0:
            raise DataError(f"item vectors must be a non-empty 2-D array (N, D); got shape {data.shape}.")
        self.kind, self.metric, self.num_items, self.ef_search = kind, metric, len(data), ef_search
        if metric == "cosine":
            faiss.normalize_L2(data)
        dim = data.shape[1]
        if kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "ivf":
            cells = nlist or max(1, min(len(data) // 39, int(4 * np.sqrt(len(data)))))
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
            self.index.train(data)
            self.index.nprobe = min(nprobe, cells)
        else:
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = ef_search
        self.index.add(data)

    def __len__(self) -> int:
        return self.num_items

    def search(self, queries: torch.Tensor, k: int,
               exclude: sparse.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), each (B, k), best first; -1 / -inf where fewer than k are found.

        ``queries`` may be (B, H, D) for H vectors per query: each is searched and an item keeps
        its best score (the union of the per-vector top-k).
        """
        if k < 1:
            raise ConfigError(f"k must be >= 1; got {k}.")
        data = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        rows, heads = len(data), (data.shape[1] if data.ndim == 3 else 1)
        flat = data.reshape(rows * heads, data.shape[-1])
        if flat.shape[1] != self.index.d:
            raise DataError(f"queries have dimension {flat.shape[1]}; the index holds {self.index.d}.")
        if self.metric == "cosine":
            _faiss().normalize_L2(flat)
        extra = int(np.diff(exclude.indptr).max()) if exclude is not None and exclude.nnz else 0
        depth = min(k + extra, self.num_items)
        if self.kind == "hnsw":  # the graph walk keeps ef candidates: fewer than depth would cut the list
            self.index.hnsw.efSearch = max(self.ef_search, depth)
        scores, items = self.index.search(flat, depth)
        scores, items = scores.reshape(rows, heads * depth), items.reshape(rows, heads * depth)
        if heads > 1:
            scores, items = _best_per_item(scores, items)
        if exclude is not None and exclude.nnz:
            scores[_excluded(items, exclude, self.num_items)] = -np.inf
        scores[items < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores, items = np.take_along_axis(scores, order, 1), np.take_along_axis(items, order, 1)
        items[np.isneginf(scores)] = -1
        if items.shape[1] < k:
            pad = k - items.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        return scores.astype(np.float32), items.astype(np.int64)


def _excluded(items: np.ndarray, exclude: sparse.csr_matrix, num_items: int) -> np.ndarray:
    """Boolean mask of the (row, item) places that ``exclude`` marks, by one sorted-key lookup."""
    rows = np.repeat(np.arange(exclude.shape[0], dtype=np.int64), np.diff(exclude.indptr))
    keys = np.sort(rows * num_items + exclude.indices)
    queries = np.arange(len(items), dtype=np.int64)[:, None] * num_items + np.maximum(items, 0)
    found = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return (keys[found] == queries) & (items >= 0)


def _best_per_item(scores: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within each row, keep each item once with its best score (others become -1 / -inf)."""
    order = np.lexsort((-scores, items), axis=1)  # by item, best score first
    items_sorted, scores_sorted = np.take_along_axis(items, order, 1), np.take_along_axis(scores, order, 1)
    repeat = np.zeros_like(items_sorted, dtype=bool)
    repeat[:, 1:] = items_sorted[:, 1:] == items_sorted[:, :-1]
    scores_sorted[repeat] = -np.inf
    items_sorted[repeat] = -1
    return scores_sorted, items_sorted
