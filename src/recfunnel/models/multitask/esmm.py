"""ESMM: a click tower and a conversion tower over shared embeddings, trained over every impression."""

from typing import Any, ClassVar

import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.errors import SchemaError
from recfunnel.models.base import MultiTaskModel, register_model
from recfunnel.nn import MLP
from recfunnel.schema import Schema
from recfunnel.tasks import ConversionTask


@register_model("esmm", kind="multitask")
class ESMM(MultiTaskModel):
    """Entire Space Multi-task Model of Ma, Zhao, Hu, Zhu, He & Gai, "Entire Space Multi-Task
    Model: An Effective Approach for Estimating Post-Click Conversion Rate", SIGIR 2018: a CTR
    tower and a CVR tower share the field embeddings; the CVR head is trained only through
    pCTCVR = pCTR x pCVR against "clicked and converted" over every impression
    (``ConversionTask``), never on clicked rows alone, so it sees the space it is used in.

    Its labels are the click, then the conversion (``label='click,purchase'``); it predicts pCTR
    and pCVR (the conversion given a click), and ``evaluate`` adds ``ctcvr``, the product's metrics.

    Args:
        schema: Input features and two binary Label specs: the click, then the conversion.
        embedding_dim: D, the size of every field embedding (shared by both towers).
        tower_units: Hidden widths of each tower (its output is one logit).
        dropout: Dropout probability after each hidden layer.
        bottom: A ranking model whose feature interaction the towers read instead of the field
            embeddings (e.g. "fm", or {"name": "deepfm", ...its options});
            see ``MultiTaskModel.build_input``.

    Example:
        >>> from recfunnel.testing import toy_schema, toy_batch
        >>> model = ESMM(toy_schema(labels=("click", "buy")), embedding_dim=4)
        >>> {k: v.shape for k, v in model(toy_batch(batch_size=8)).items()}
        {'click': torch.Size([8]), 'buy': torch.Size([8])}
    """

    task_class: ClassVar[type] = ConversionTask

    def __init__(self, schema: Schema, *, embedding_dim: int = 16, tower_units: tuple[int, ...] = (256, 128),
                 dropout: float = 0.0,
                 bottom: str | dict[str, Any] | None = None) -> None:
        super().__init__(schema)
        if len(schema.labels) != 2 or any(label.kind != "binary" for label in schema.labels):
            raise SchemaError(f"esmm predicts two binary labels, the click then the conversion; the schema has "
                              f"{[(label.name, label.kind) for label in schema.labels]}.")
        width = self.build_input(embedding_dim, bottom)
        self.towers = nn.ModuleDict({label.name: MLP(width, [*tower_units, 1], dropout=dropout)
                                     for label in schema.labels})

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return ``{click: pCTR logits (B,), conversion: pCVR logits (B,)}``."""
        x = self.shared_input(batch)
        return self.read_out(x, {name: tower(x).squeeze(-1) for name, tower in self.towers.items()})
