"""Side features of users or items: a FeatureTable embedded as one flat vector per row."""

from __future__ import annotations

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import Interactions
from recfunnel.errors import DataError
from recfunnel.nn.embedding import FeatureEmbedding
from recfunnel.nn.feature_table import FeatureTable
from recfunnel.schema import Schema

OOV = 1  # the encoder's out-of-vocabulary index (0 is padding)


class SideFeatures(nn.Module):
    """Every row's encoded features (kept as buffers) and their embedding, flattened to (B, F·D).

    Row index -1 stands for a user or item outside the table (unseen in training): its
    categorical features are out-of-vocabulary, its bags empty and its numerics 0 (the
    standardised mean).

    Args:
        schema: The fitted schema of the feature table.
        num_rows: Rows of the table (users or items).
        embedding_dim: D of every field embedding.

    Example:
        >>> from recfunnel.schema import Categorical
        >>> side = SideFeatures(Schema(Categorical("genre", vocab_size=5)), num_rows=3, embedding_dim=4)
        >>> side.fill(Batch({"genre": torch.tensor([2, 3, 4])}))
        >>> side(torch.tensor([0, -1])).shape, side.output_dim
        (torch.Size([2, 4]), 4)
    """

    def __init__(self, schema: Schema, num_rows: int, embedding_dim: int) -> None:
        super().__init__()
        self.table = FeatureTable(schema, num_rows)
        self.embedding = FeatureEmbedding(schema.inputs, embedding_dim)
        self.output_dim = self.embedding.flat_dim

    def fill(self, batch: Batch) -> None:
        """Copy the encoded rows (one per index, in index order) into the table."""
        self.table.fill(batch)

    def encode(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encoded feature columns of B rows -> (B, F·D)."""
        return self.embedding(features).flatten(1)

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feature columns of the rows at ``index``; -1 gives the out-of-table row."""
        features = self.table.rows(index.clamp_min(0))
        unknown = index < 0
        if not bool(unknown.any()):
            return features
        out = {}
        for name, column in features.items():
            fill = OOV if column.ndim == 1 and not column.is_floating_point() else 0
            where = unknown.view(-1, *([1] * (column.ndim - 1)))
            out[name] = column.masked_fill(where, fill)
        return out

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) row indices -> (B, F·D)."""
        return self.encode(self.rows(index))


def fill_sides(model: str, sides: dict[str, SideFeatures | None], data: Interactions, *,
               id_columns: list[str], unseen: torch.Tensor) -> None:
    """Copy the interactions' user and item feature tables into a model's ``sides`` ("user",
    "item"). An item that never occurs in training (``unseen``, by index) gets the
    out-of-vocabulary code in its ``id_columns``: its id row was never trained, so the item is
    described by its other features, as a new item is.

    Raises:
        DataError: The model was built with a side's schema but the interactions lack its table.
    """
    for name, side in sides.items():
        if side is None:
            continue
        rows = data.user_features if name == "user" else data.item_features
        if rows is None:
            raise DataError(f"{model} was built with a {name} schema but the interactions carry no "
                            f"{name}_features; pass {name}_features=... to fit.")
        if name == "item":
            rows = Batch({k: v.masked_fill(unseen, OOV) if k in id_columns else v for k, v in rows.features.items()})
        side.fill(rows)


def hide_ids(features: dict[str, torch.Tensor], id_columns: list[str], share: float) -> dict[str, torch.Tensor]:
    """``features`` with the id columns of a random ``share`` of the rows set to out-of-vocabulary
    (DropoutNet, Volkovs et al., NeurIPS 2017: the other features learn to place an item alone)."""
    if share <= 0 or not id_columns:
        return features
    hidden = torch.rand(len(next(iter(features.values()))), device=next(iter(features.values())).device) < share
    return {**features, **{name: features[name].masked_fill(hidden, OOV) for name in id_columns}}
