"""Top-k search over item vectors or score rows: exact (batched matmul + topk) and faiss."""

from __future__ import annotations

from typing import Any

import torch

from recfunnel.errors import ConfigError
from recfunnel.index.exact import ExactIndex, topk_excluding, topk_static

INDEX_KINDS = ("exact", "flat", "ivf", "hnsw")


def build_index(vectors: torch.Tensor, kind: str = "exact", *, metric: str = "dot", **params: Any) -> Any:
    """An index over item vectors: "exact" (torch) or a faiss "flat", "ivf" or "hnsw" index.

    Example:
        >>> build_index(torch.eye(3)).search(torch.tensor([[0.0, 0.0, 1.0]]), 1)[1].tolist()
        [[2]]
    """
    if kind == "exact":
        return ExactIndex(vectors, metric=metric, **params)
    if kind in INDEX_KINDS:
        from recfunnel.index.faiss_index import FaissIndex

        return FaissIndex(vectors, kind=kind, metric=metric, **params)
    raise ConfigError(f"index kind {kind!r} is not valid; expected one of {list(INDEX_KINDS)}.")


__all__ = ["INDEX_KINDS", "ExactIndex", "build_index", "topk_excluding", "topk_static"]
