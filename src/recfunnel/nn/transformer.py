"""Self-attention blocks over behaviour sequences: the encoder of SASRec and BERT4Rec.

A sequence is (B, L, D) with a (B, L) mask of real positions. Causal blocks let position t attend
to positions <= t only (next-item models); bidirectional blocks see the whole sequence (masked-item
models). Every position may attend to itself, so a padded position never has an empty row of
attention (its output is garbage, and callers mask it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recfunnel.errors import ConfigError
from recfunnel.nn.layers import Dropout


def attention_mask(valid: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """(B, 1, L, L) boolean mask, True where a query position may attend to a key position.

    Keys must be real positions (``valid``) and, when ``causal``, no later than the query; the
    diagonal is always open so that no row is empty.

    Example:
        >>> attention_mask(torch.tensor([[False, True, True]]), causal=True)[0, 0].int().tolist()
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    length = valid.shape[1]
    allowed = valid[:, None, None, :].expand(-1, 1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    return allowed | torch.eye(length, dtype=torch.bool, device=valid.device)


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer: x + attention(LN(x)), then x + FFN(LN(x)), with dropout.

    Args:
        dim: Model width D (a multiple of ``num_heads``).
        num_heads: Attention heads.
        dropout: Dropout on attention weights and on each residual branch.
        ffn_dim: Hidden width of the point-wise feed-forward network (default D).
        activation: "relu" (SASRec) or "gelu" (BERT4Rec).
    """

    def __init__(self, dim: int, num_heads: int = 1, *, dropout: float = 0.0, ffn_dim: int | None = None,
                 activation: str = "gelu") -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embedding_dim {dim} must be a multiple of num_heads {num_heads}.")
        if activation not in ("relu", "gelu"):
            raise ConfigError(f"activation {activation!r} is not valid; expected 'relu' or 'gelu'.")
        self.num_heads, self.dropout = num_heads, dropout
        self.norm_attention, self.norm_ffn = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = ffn_dim or dim
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU() if activation == "relu" else nn.GELU(),
                                 Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = Dropout(dropout)  # a uniform draw: bernoulli_ took a fifth of a SASRec step on CPU

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        return q, k, v                                                    # each (B, H, L, D / H)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D), ``mask`` from ``attention_mask``."""
        q, k, v = self._heads(self.norm_attention(x))
        if self.training and self.dropout > 0:  # dropout on the attention weights, drawn as above
            attended = self.drop(self._weights(q, k, mask)) @ v
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.out(attended.transpose(1, 2).flatten(2)))
        return x + self.drop(self.ffn(self.norm_ffn(x)))

    def attention_weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, L, L) attention probabilities of this block's input ``x`` (for explanations)."""
        q, k, _ = self._heads(self.norm_attention(x))
        return self._weights(q, k, mask)

    @staticmethod
    def _weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        return scores.masked_fill(~mask, float("-inf")).softmax(-1)


class SequenceEncoder(nn.Module):
    """Item embeddings plus learned positions, then ``num_blocks`` transformer blocks and a final norm.

    Positions count from the end of the sequence (the latest item is always the last position),
    so left-padded sequences of any length share their recent positions.

    Args:
        dim: Width D of the item embeddings this encoder reads.
        max_len: Longest sequence L.
        num_blocks, num_heads, dropout, activation: The blocks' shape.
        causal: Next-item (True) or masked-item (False) attention.
    """

    def __init__(self, dim: int, max_len: int, *, num_blocks: int = 2, num_heads: int = 1, dropout: float = 0.2,
                 activation: str = "gelu", causal: bool = True) -> None:
        super().__init__()
        self.causal, self.scale = causal, math.sqrt(dim)
        self.positions = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, dropout=dropout, activation=activation)
                                    for _ in range(num_blocks))
        self.drop, self.norm = Dropout(dropout), nn.LayerNorm(dim)
        nn.init.normal_(self.positions.weight, std=0.02)

    def _input(self, items: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        length = items.shape[1]
        positions = self.positions.weight[self.positions.num_embeddings - length:]        # (L, D)
        x = self.drop(items * self.scale + positions) * valid.unsqueeze(-1)
        return x, attention_mask(valid, causal=self.causal), valid.unsqueeze(-1)

    def forward(self, items: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L, D) embedded items and their (B, L) mask of real positions -> (B, L, D) states."""
        x, mask, keep = self._input(items, valid)
        for block in self.blocks:
            x = block(x, mask) * keep
        return self.norm(x)

    def last_attention(self, items: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L) how much the last position attends to each position in the last block (mean of heads)."""
        x, mask, keep = self._input(items, valid)
        for block in self.blocks[:-1]:
            x = block(x, mask) * keep
        last: TransformerBlock = self.blocks[-1]  # type: ignore[assignment]
        return last.attention_weights(x, mask)[:, :, -1].mean(1)
