"""Capsule blocks of multi-interest retrieval: squash, behaviour-to-interest routing, label-aware attention."""

from __future__ import annotations

import torch
from torch import nn


def squash(vectors: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Capsule non-linearity ``|z|² / (1 + |z|²) · z / |z|`` over the last dim: norms fall in [0, 1).

    Example:
        >>> round(squash(torch.tensor([[3.0, 4.0]])).norm().item(), 4)  # 25 / 26
        0.9615
    """
    norm2 = vectors.pow(2).sum(-1, keepdim=True)
    return vectors * (norm2 / (1.0 + norm2) / (norm2 + eps).sqrt())


class InterestRouting(nn.Module):
    """Behaviour-to-interest dynamic routing of MIND (Li et al., CIKM 2019, arXiv:1904.08030).

    Behaviour vectors e_i are mapped by one shared bilinear matrix S; each behaviour splits over
    the K interest capsules by a softmax of routing logits b_ij, capsules are the squashed
    weighted sums, and b_ij grows by the agreement u_j·S e_i. The initial logits are drawn once
    from N(0, 1) and kept as a buffer (the paper draws them at random and keeps them fixed), so
    serving is deterministic. As in capsule networks, the logit updates of all but the last
    iteration do not pass gradients.

    Args:
        embedding_dim: D, the size of behaviour and interest vectors.
        num_interests: K, the most interests per user.
        max_len: L, the history length.
        iterations: Routing iterations.

    Example:
        >>> routing = InterestRouting(8, num_interests=3, max_len=5)
        >>> routing(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)).shape
        torch.Size([2, 3, 8])
    """

    def __init__(self, embedding_dim: int, *, num_interests: int, max_len: int, iterations: int = 3) -> None:
        super().__init__()
        self.iterations = iterations
        self.bilinear = nn.Parameter(torch.randn(embedding_dim, embedding_dim) / embedding_dim**0.5)
        self.initial_logits: torch.Tensor
        self.register_buffer("initial_logits", torch.randn(num_interests, max_len))

    def forward(self, behaviours: torch.Tensor, mask: torch.Tensor,
                interest_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) behaviours, (B, L) valid positions, optional (B, K) active interests -> (B, K, D)."""
        low = behaviours @ self.bilinear                                   # (B, L, D)
        logits = self.initial_logits.expand(len(low), -1, -1)             # (B, K, L)
        keep = mask.unsqueeze(1).to(low.dtype)                             # (B, 1, L)
        for step in range(self.iterations):
            last = step == self.iterations - 1
            source = low if last else low.detach()
            masked = logits if interest_mask is None else logits.masked_fill(~interest_mask.unsqueeze(-1), -1e9)
            weights = torch.softmax(masked, dim=1) * keep                  # (B, K, L), over interests
            capsules = squash(weights @ source)                            # (B, K, D)
            if not last:
                logits = logits + capsules @ source.transpose(1, 2)        # (B, K, L)
        return capsules


def label_aware_attention(interests: torch.Tensor, target: torch.Tensor, *, pow_p: float,
                          interest_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Combine K interests into one vector by their agreement with the target item (MIND §3.4).

    Weights are ``softmax(pow_p · V_u e)``, i.e. the attention scores exp(V_u e) raised to the
    power ``pow_p`` and renormalised: 0 averages the interests, large values pick the interest
    closest to the target (hard attention).

    Args:
        interests: (B, K, D) interest vectors.
        target: (B, D) target item vectors.
        pow_p: Sharpness of the attention.
        interest_mask: Optional (B, K) True for the interests in use.

    Returns:
        (B, D) one user vector per row.

    Example:
        >>> interests = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> label_aware_attention(interests, torch.tensor([[0.2, 0.9]]), pow_p=100.0).round().tolist()
        [[0.0, 1.0]]
    """
    scores = pow_p * (interests @ target.unsqueeze(-1)).squeeze(-1)        # (B, K)
    if interest_mask is not None:
        scores = scores.masked_fill(~interest_mask, float("-inf"))
    weights = torch.softmax(scores, dim=1)                                  # (B, K)
    return (weights.unsqueeze(-1) * interests).sum(1)                      # (B, D)


def label_aware_scores(interests: torch.Tensor, items: torch.Tensor, *, pow_p: float,
                       interest_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Score every item against the user vector that label-aware attention forms towards it.

    ``label_aware_attention`` with each of the N items as the label, for B users at once: the
    score of item j is ``(Σ_k softmax_k(pow_p · v_k·e_j) v_k)·e_j``. With a large ``pow_p`` this
    is ``max_k v_k·e_j``, the score a multi-interest index serves.

    Args:
        interests: (B, K, D) interest vectors.
        items: (N, D) item vectors.
        pow_p: Sharpness of the attention.
        interest_mask: Optional (B, K) True for the interests in use.

    Returns:
        (B, N) scores.

    Example:
        >>> interests = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
        >>> label_aware_scores(interests, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), pow_p=50.0).tolist()
        [[1.0, 2.0]]
    """
    scores = interests @ items.T                                            # (B, K, N)
    logits = pow_p * scores
    if interest_mask is not None:
        logits = logits.masked_fill(~interest_mask.unsqueeze(-1), float("-inf"))
    return (torch.softmax(logits, dim=1) * scores).sum(1)                   # (B, N)
