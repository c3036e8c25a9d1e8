"""Self-attention over field embeddings: AutoInt's interacting layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InteractingLayer(nn.Module):
    """Multi-head self-attention across fields with a residual connection, the interacting
    layer of AutoInt (Song et al., CIKM 2019, arXiv:1810.11921).

    Each head h projects every field vector e_m to a query, key and value of width d' and
    attends over all fields with unscaled dot products, as in the paper:
    ``ẽ_m^h = Σ_k softmax_k(<W_Q^h e_m, W_K^h e_k>) W_V^h e_k``. The heads are concatenated and
    the output is ``ReLU(ẽ_m + W_Res e_m)``, so stacked layers keep lower-order combinations.

    Args:
        input_dim: d, the width of each input field vector.
        attention_dim: d', the width of each head.
        num_heads: H, the number of attention heads; the output width is H·d'.
        residual: Add the projected input W_Res e_m before the ReLU.

    Example:
        >>> layer = InteractingLayer(4, 3, num_heads=2)
        >>> layer.output_dim, layer(torch.randn(5, 6, 4)).shape
        (6, torch.Size([5, 6, 6]))
    """

    def __init__(self, input_dim: int, attention_dim: int, *, num_heads: int = 2,
                 residual: bool = True) -> None:
        super().__init__()
        self.num_heads, self.attention_dim = num_heads, attention_dim
        self.output_dim = num_heads * attention_dim
        self.query = nn.Linear(input_dim, self.output_dim, bias=False)
        self.key = nn.Linear(input_dim, self.output_dim, bias=False)
        self.value = nn.Linear(input_dim, self.output_dim, bias=False)
        self.residual = nn.Linear(input_dim, self.output_dim, bias=False) if residual else None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, H*d') -> (B, H, F, d')."""
        return x.unflatten(-1, (self.num_heads, self.attention_dim)).transpose(1, 2)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        """(B, F, d) -> (B, F, H*d')."""
        query, key, value = (self._heads(proj(fields)) for proj in (self.query, self.key, self.value))
        attended = F.scaled_dot_product_attention(query, key, value, scale=1.0)  # (B, H, F, d')
        combined = attended.transpose(1, 2).flatten(2)                           # (B, F, H*d')
        if self.residual is not None:
            combined = combined + self.residual(fields)
        return torch.relu(combined)
