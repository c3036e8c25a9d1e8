"""Top-k search over item vectors or score rows: exact (batched matmul + topk) and faiss."""

from recfunnel.index.exact import ExactIndex, topk_excluding

__all__ = ["ExactIndex", "topk_excluding"]
