"""Batch: named columns of tensors, sliced by index tensors (no per-row Python)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """Encoded rows: ``features`` and ``labels`` map a column name to a tensor whose first dim is rows.

    Categorical features are int64 ``(B,)``, multi-valued and sequence features int64 ``(B, L)``
    with 0 as padding, numeric features float32 ``(B,)``, labels float32 ``(B,)``.

    Example:
        >>> b = Batch({"item_id": torch.tensor([2, 3, 4])}, {"click": torch.tensor([0., 1., 1.])})
        >>> len(b), b[torch.tensor([2, 0])].features["item_id"].tolist()
        (3, [4, 2])
    """

    features: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        for column in (*self.features.values(), *self.labels.values()):
            return int(column.shape[0])
        return 0

    def __getitem__(self, index: torch.Tensor | slice) -> Batch:
        """Rows selected by an index tensor or a slice."""
        return Batch(
            {k: v[index] for k, v in self.features.items()},
            {k: v[index] for k, v in self.labels.items()},
        )

    def to(self, device: torch.device | str) -> Batch:
        """Move every column to ``device``."""
        return Batch(
            {k: v.to(device, non_blocking=True) for k, v in self.features.items()},
            {k: v.to(device, non_blocking=True) for k, v in self.labels.items()},
        )

    def without_labels(self) -> Batch:
        """The same features with no labels."""
        return Batch(dict(self.features), {})

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        """Stack batches with the same columns along rows."""
        first = batches[0]
        return Batch(
            {k: torch.cat([b.features[k] for b in batches]) for k in first.features},
            {k: torch.cat([b.labels[k] for b in batches]) for k in first.labels},
        )
