"""FeatureTable: a model-owned table of encoded features, one row per user or item index."""

from __future__ import annotations

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import DataError
from recfunnel.schema import MultiCategorical, Numeric, Schema, Sequence


class FeatureTable(nn.Module):
    """Encoded feature columns of every user (or item) kept as buffers, so they are saved with the
    model and a tower can encode any row, including rows that never had an interaction.

    Args:
        schema: A fitted feature schema (vocab sizes set); its labels are ignored.
        num_rows: Rows in the table (users or items).

    Example:
        >>> from recfunnel.schema import Categorical, Schema
        >>> table = FeatureTable(Schema(Categorical("genre", vocab_size=5)), num_rows=3)
        >>> table.fill(Batch({"genre": torch.tensor([2, 3, 4])}))
        >>> table.rows(torch.tensor([2, 0]))["genre"].tolist()
        [4, 2]
    """

    def __init__(self, schema: Schema, num_rows: int) -> None:
        super().__init__()
        self.names = [spec.name for spec in schema.inputs]
        for spec in schema.inputs:
            if isinstance(spec, (MultiCategorical, Sequence)):
                value = torch.zeros(num_rows, spec.max_len, dtype=torch.long)
            elif isinstance(spec, Numeric) and spec.transform != "bucketize":
                value = torch.zeros(num_rows)
            else:
                value = torch.zeros(num_rows, dtype=torch.long)
            self.register_buffer(_key(spec.name), value)

    def fill(self, batch: Batch) -> None:
        """Copy the encoded rows (in index order) into the table."""
        for name in self.names:
            target = getattr(self, _key(name))
            source = batch.features.get(name)
            if source is None or source.shape != target.shape:
                got = None if source is None else tuple(source.shape)
                raise DataError(f"feature table column {name!r}: expected shape {tuple(target.shape)}, got {got}.")
            target.copy_(source)

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feature columns of the rows at ``index``."""
        return {name: getattr(self, _key(name))[index] for name in self.names}


def _key(name: str) -> str:
    return "col_" + name.replace(".", "_")
