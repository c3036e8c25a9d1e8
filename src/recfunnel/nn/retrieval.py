"""Sampled softmax with in-batch and mixed negatives, log-Q correction and temperature."""

from __future__ import annotations

import torch


def sampled_softmax_logits(queries: torch.Tensor, candidates: torch.Tensor, candidate_ids: torch.Tensor,
                           target_ids: torch.Tensor, *, log_q: torch.Tensor | None = None,
                           temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of each query against a shared candidate set, and the column of its positive.

    The candidates are the batch's positives (first B rows, in query order) optionally followed
    by extra sampled items (mixed negatives, Yang et al., 2020). Following Yi et al. (RecSys
    2019), scores are divided by ``temperature`` and each candidate's log sampling probability
    ``log_q`` is subtracted, so popular items, which appear as in-batch negatives more often,
    are not over-penalised. A candidate that is the same item as a row's positive (an
    "accidental hit") is masked out of that row, except at the positive's own column.

    Args:
        queries: (B, D) query vectors.
        candidates: (C, D) candidate item vectors, C >= B, the first B being the positives.
        candidate_ids: (C,) item indices of the candidates.
        target_ids: (B,) item index of each row's positive.
        log_q: (C,) log sampling probability of each candidate, or None.
        temperature: Divides the scores.

    Returns:
        ``(logits (B, C), target (B,))`` for cross-entropy; ``target`` is ``arange(B)``.

    Example:
        >>> q = torch.eye(2); ids = torch.tensor([5, 5, 7])
        >>> logits, target = sampled_softmax_logits(q, torch.eye(3, 2), ids, torch.tensor([5, 5]))
        >>> logits.tolist(), target.tolist()
        ([[1.0, -inf, 0.0], [-inf, 1.0, 0.0]], [0, 1])
    """
    logits = queries @ candidates.T / temperature
    if log_q is not None:
        logits = logits - log_q
    rows = torch.arange(len(queries), device=queries.device)
    hits = target_ids[:, None] == candidate_ids[None, :]
    hits[rows, rows] = False
    return logits.masked_fill(hits, float("-inf")), rows
