"""Compressed Interaction Network: xDeepFM's explicit, vector-wise feature crosses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recfunnel.errors import ConfigError


class CIN(nn.Module):
    """Compressed Interaction Network of xDeepFM (Lian et al., KDD 2018, arXiv:1803.05170).

    Layer k takes the outer product of every row of X^{k-1} (B, H_{k-1}, D) with every field of
    X^0 (B, F, D), separately for each embedding dimension d, and compresses the H_{k-1}·F maps
    to H_k with a learned (H_k, H_{k-1}·F) filter, i.e. a 1x1 convolution over D:
    ``X^k[h, d] = Σ_{i,j} W^{k,h}[i, j] · X^{k-1}[i, d] · X^0[j, d] + b^{k,h}``.
    Every layer's maps are sum-pooled over D, so layer k contributes crosses of degree k + 1.
    With ``split_half`` each hidden layer sends half of its maps to the output and half to the next
    layer, as in the authors' implementation.

    Args:
        num_fields: F, the number of field vectors in X^0.
        layer_sizes: H_k, the number of feature maps of each layer.
        split_half: Split every hidden layer's maps between the output and the next layer.

    Raises:
        ConfigError: No layers, or ``split_half`` with an odd size for a layer other than the last.

    Example:
        >>> cin = CIN(5, [8, 6])
        >>> cin.output_dim, cin(torch.randn(3, 5, 4)).shape
        (10, torch.Size([3, 10]))
    """

    def __init__(self, num_fields: int, layer_sizes: Sequence[int], *, split_half: bool = True) -> None:
        super().__init__()
        if not layer_sizes:
            raise ConfigError("CIN layer_sizes=() has no layers; give at least one size, e.g. (128, 128).")
        odd = [size for size in layer_sizes[:-1] if size % 2]
        if split_half and odd:
            raise ConfigError(
                f"CIN layer_sizes={tuple(layer_sizes)!r} has odd hidden sizes {odd!r}; with split_half=True "
                f"every layer but the last must be even (or set split_half=False)."
            )
        self.filters = nn.ModuleList()
        self.kept: list[int] = []  # maps each layer passes to the next one
        previous, output_dim = num_fields, 0
        for k, size in enumerate(layer_sizes):
            self.filters.append(nn.Conv1d(previous * num_fields, size, kernel_size=1))
            last = k == len(layer_sizes) - 1
            previous = size // 2 if split_half and not last else size
            self.kept.append(previous)
            output_dim += size - previous if split_half and not last else size
        self.output_dim = output_dim

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, F, D) -> (B, output_dim), the sum-pooled feature maps of every layer."""
        batch, _, dim = x0.shape
        hidden, pooled = x0, []
        for conv, kept in zip(self.filters, self.kept, strict=True):
            outer = torch.einsum("bhd,bmd->bhmd", hidden, x0).reshape(batch, -1, dim)  # (B, H_{k-1}*F, D)
            maps = conv(outer)                                                          # (B, H_k, D)
            hidden = maps[:, :kept]
            if kept < maps.shape[1]:  # split half: the first half goes on, the rest to the output
                maps = maps[:, kept:]
            pooled.append(maps.sum(-1))                                                 # (B, H_k or H_k/2)
        return torch.cat(pooled, dim=1)
