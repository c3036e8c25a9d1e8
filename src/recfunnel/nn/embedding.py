"""Field embeddings over one sparse table shared by every id-like feature."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from recfunnel.errors import SchemaError
from recfunnel.schema import Categorical, Feature, MultiCategorical, Numeric, Sequence


def _table_layout(features: tuple[Feature, ...]) -> tuple[dict[str, int], int]:
    """Row offset of each id-like feature in one concatenated table, and the table's row count.

    Sequences that share another feature's vocabulary reuse that feature's rows.
    """
    offsets: dict[str, int] = {}
    total = 0
    for spec in features:
        if isinstance(spec, Sequence) and spec.shares is not None:
            continue
        size = spec.vocab_size
        if isinstance(spec, Numeric) and size is None:
            continue
        if size is None:
            raise SchemaError(
                f"feature {spec.name!r} has no vocab_size; build models from a fitted schema "
                f"(FeatureEncoder(schema).fit(frame).schema_)."
            )
        offsets[spec.name] = total
        total += size
    for spec in features:
        if isinstance(spec, Sequence) and spec.shares is not None:
            if spec.shares not in offsets:
                raise SchemaError(
                    f"Sequence {spec.name!r} shares {spec.shares!r}, which is not among the model's inputs."
                )
            offsets[spec.name] = offsets[spec.shares]
    return offsets, max(total, 1)


class FeatureEmbedding(nn.Module):
    """Embeds every input feature as one D-dim field vector: (B, F, D).

    All id-like features (categorical, bags, sequences, bucketized numerics) live in ONE
    ``nn.Embedding(sparse=True)`` at fixed row offsets, so single-valued fields are looked up
    in a single call and the optimizer touches only the rows a batch used. Bags and sequences
    are mean- (or sum-) pooled over non-padding positions. A plain numeric feature becomes its
    value times a learned vector.

    Args:
        features: Input specs from a fitted schema (``schema.inputs``).
        embedding_dim: D.
        init_std: Standard deviation of the normal initialisation of embedding rows.
        with_linear: Also learn a first-order weight per id (and per numeric) plus a bias, stored
            as one extra column of the same table, so first- and second-order terms cost one
            lookup and one sparse optimizer update instead of two (see ``forward_with_linear``).

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> emb = FeatureEmbedding(toy_schema().inputs, 4)
        >>> emb(toy_batch(batch_size=8).features).shape
        torch.Size([8, 5, 4])
    """

    def __init__(self, features: Iterable[Feature], embedding_dim: int, *, init_std: float = 0.01,
                 with_linear: bool = False) -> None:
        super().__init__()
        self.features = tuple(features)
        self.embedding_dim = embedding_dim
        self.with_linear = with_linear
        width = embedding_dim + int(with_linear)
        self.offsets, num_rows = _table_layout(self.features)
        self.table = nn.Embedding(num_rows, width, sparse=True)
        nn.init.normal_(self.table.weight, std=init_std)
        self.single = [f.name for f in self.features if self._is_single(f)]
        self.bags = [f for f in self.features if isinstance(f, (MultiCategorical, Sequence))]
        self.numeric = [f.name for f in self.features if isinstance(f, Numeric) and f.vocab_size is None]
        self.single_offsets: torch.Tensor
        self.register_buffer(
            "single_offsets", torch.tensor([self.offsets[n] for n in self.single], dtype=torch.long),
            persistent=False,
        )
        self.numeric_vectors = (
            nn.Parameter(torch.randn(len(self.numeric), width) * init_std) if self.numeric else None
        )
        self.bias = nn.Parameter(torch.zeros(())) if with_linear else None
        if with_linear:  # first-order weights start at zero, as in logistic regression
            with torch.no_grad():
                self.table.weight[:, -1] = 0.0
                if self.numeric_vectors is not None:
                    self.numeric_vectors[:, -1] = 0.0
        self.order = self.single + [f.name for f in self.bags] + self.numeric

    @staticmethod
    def _is_single(spec: Feature) -> bool:
        return isinstance(spec, Categorical) or (isinstance(spec, Numeric) and spec.vocab_size is not None)

    @property
    def num_fields(self) -> int:
        """F, the number of field vectors ``forward`` returns."""
        return len(self.order)

    @property
    def flat_dim(self) -> int:
        """F * D, the width of the flattened field vectors."""
        return self.num_fields * self.embedding_dim

    @property
    def dense_dim(self) -> int:
        """F * D + Fn, the width of ``dense_input``."""
        return self.flat_dim + len(self.numeric)

    def dense_input(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Flattened field vectors followed by the raw numeric values: (B, F * D + Fn), the input
        of models that cross features explicitly (DCN, DCN-V2)."""
        numeric = [features[name].unsqueeze(1) for name in self.numeric]
        return torch.cat([self(features).flatten(1), *numeric], dim=1)

    def lookup(self, name: str, indices: torch.Tensor) -> torch.Tensor:
        """Raw rows of feature ``name`` for any index shape: (...,) -> (..., D)."""
        return self.table(indices + self.offsets[name])

    def _pool(self, vectors: torch.Tensor, indices: torch.Tensor, pooling: str) -> torch.Tensor:
        """Sum or mean of a bag's (B, L, W) rows over its non-padding positions: (B, W)."""
        mask = (indices > 0).unsqueeze(-1).to(vectors.dtype)  # (B, L, 1)
        summed = (vectors * mask).sum(1)                       # (B, W)
        if pooling == "sum":
            return summed
        return summed / mask.sum(1).clamp_min(1.0)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return field vectors of shape (B, F, D) in the order ``self.order``."""
        fields = self._lookup_fields(features)
        return fields[..., : self.embedding_dim] if self.with_linear else fields

    def forward_with_linear(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return field vectors (B, F, D) and the first-order logit (B,): bias + Σ weights."""
        if self.bias is None:
            raise RuntimeError("forward_with_linear needs FeatureEmbedding(..., with_linear=True)")
        fields = self._lookup_fields(features)                    # (B, F, D + 1)
        return fields[..., : self.embedding_dim], fields[..., -1].sum(1) + self.bias

    def _lookup_fields(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        # One table lookup for single ids and every bag together: one sparse gradient per step
        # instead of one per bag, which the optimizer would otherwise have to merge.
        ids = []
        if self.single:
            ids.append(torch.stack([features[n] for n in self.single], dim=1) + self.single_offsets)  # (B, Fc)
        ids.extend(features[spec.name] + self.offsets[spec.name] for spec in self.bags)              # (B, L) each
        parts = []
        if ids:
            rows = self.table(torch.cat(ids, dim=1) if len(ids) > 1 else ids[0])  # (B, Fc + ΣL, W)
            start = len(self.single)
            if self.single:
                parts.append(rows[:, :start])                                      # (B, Fc, W)
            for spec in self.bags:
                bag = features[spec.name]
                pooling = spec.pooling if isinstance(spec, MultiCategorical) else "mean"
                parts.append(self._pool(rows[:, start:start + bag.shape[1]], bag, pooling).unsqueeze(1))
                start += bag.shape[1]
        if self.numeric_vectors is not None:
            values = torch.stack([features[n] for n in self.numeric], dim=1)  # (B, Fn)
            parts.append(values.unsqueeze(-1) * self.numeric_vectors)         # (B, Fn, D)
        return torch.cat(parts, dim=1)


class LinearTerm(nn.Module):
    """First-order term: bias + one learned weight per id (pooled for bags) + a weight per numeric.

    Args:
        features: Input specs from a fitted schema.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> LinearTerm(toy_schema().inputs)(toy_batch(batch_size=8).features).shape
        torch.Size([8])
    """

    def __init__(self, features: Iterable[Feature]) -> None:
        super().__init__()
        self.weights = FeatureEmbedding(features, 0, with_linear=True)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return (B,) logits."""
        return self.weights.forward_with_linear(features)[1]
