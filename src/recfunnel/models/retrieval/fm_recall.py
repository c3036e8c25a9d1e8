"""FM as one recall model: a factorisation machine split into a user side and an item side."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, Interactions
from recfunnel.errors import ConfigError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import RetrievalModule, SampledLogits, indices, users_and_recent
from recfunnel.nn import FactorizationMachine
from recfunnel.nn.pooling import embed_history, masked_mean
from recfunnel.nn.sampling import CandidateSampler, next_item_batch
from recfunnel.nn.side_features import SideFeatures, fill_sides, hide_ids
from recfunnel.schema import Schema


@register_model("fm_recall", kind="retrieval")
class FMRecall(RetrievalModule):
    """A factorisation machine (Rendle, ICDM 2010) over a user's fields (user id, the mean of the
    recent items, the user's features) and an item's fields (item id, the item's features), used
    for recall as in the industrial "FM unified recall" practice: of the FM's pairwise terms,
    those inside the user's fields are the same for every item and drop out of a ranking, so

        score(u, i) = (Σ_{f ∈ user} v_f) · (Σ_{g ∈ item} v_g) + w_i + Σ_{g < h ∈ item} v_g · v_h,

    the dot product of a query vector [Σ_user v, 1] and an item vector [Σ_item v, w_i + the item's
    own pairwise terms]. One model thus recalls (an ANN index over the item vectors) and scores
    (the same product is the FM's score of the pair, less the user-only terms). Trained like the
    two-tower model: each interaction against the batch's positives and ``num_negatives`` uniform
    samples in a softmax, log-Q corrected. An item without interactions in training has no id
    field (the out-of-vocabulary id of the item table), so a new item described by its features
    is scored by them alone.

    Args:
        schema: The retrieval schema (ids, history length, user and item features).
        embedding_dim: D of every field's vector.
        num_negatives: Uniformly sampled extra negatives per batch.
        use_log_q: Subtract each candidate's log expected count from its logit.
        id_dropout: Share of training candidates whose id field is hidden (DropoutNet, Volkovs
            et al., NeurIPS 2017), so the item features learn to place an item alone.

    Example:
        >>> import pandas as pd
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1]}))
        >>> model = FMRecall(data.schema(), embedding_dim=8, num_negatives=2)
        >>> model(model.training_batch(data, seed=0)).logits.shape  # 3 rows x (3 positives + 2)
        torch.Size([3, 5])
    """

    reads_item_features = True
    trainer_defaults = {"batch_size": 1024}  # an in-batch softmax step costs O(B (B + M))
    test_params = {"embedding_dim": 16, "num_negatives": 8}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, num_negatives: int = 256,
                 use_log_q: bool = True, id_dropout: float = 0.1) -> None:
        super().__init__(schema)
        dim, self.use_log_q = embedding_dim, use_log_q
        if embedding_dim < 1 or not 0 <= id_dropout < 1:
            raise ConfigError(f"fm_recall needs embedding_dim >= 1 and 0 <= id_dropout < 1; got {embedding_dim!r}, "
                              f"{id_dropout!r}.")
        self.id_dropout = float(id_dropout)
        self.users = nn.Embedding(self.num_users, dim, sparse=True)
        self.history = nn.Embedding(self.num_items + 1, dim, sparse=True)  # row 0 pads histories
        self.items = nn.Embedding(self.num_items, dim, sparse=True)  # without an item table (else an id feature)
        self.item_bias = nn.Embedding(self.num_items, 1, sparse=True)
        for table in (self.users, self.history, self.items):
            nn.init.normal_(table.weight, std=0.05)
        nn.init.zeros_(self.item_bias.weight)
        self.user_side = SideFeatures(self.user_features, self.num_users, dim) if self.user_features else None
        self.item_side = SideFeatures(self.item_features, self.num_items, dim) if self.item_features else None
        self.item_linear = nn.Linear(self.item_side.output_dim, 1) if self.item_side else None
        self.id_columns = [f.name for f in self.item_features.by_role("item")] if self.item_features else []
        self.pairwise = FactorizationMachine()
        self.sampler = CandidateSampler(self.num_items, num_negatives=num_negatives)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Fill the feature tables and item shares; one example per interaction."""
        self.sampler.fit(data)
        fill_sides("fm_recall", {"user": self.user_side, "item": self.item_side}, data, id_columns=self.id_columns,
                   unseen=self.sampler.item_share == 0)
        return next_item_batch(data, self.max_history)

    def _queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B, D + 1): the sum of the user's field vectors, and 1 for the item's own terms."""
        known = (users >= 0).unsqueeze(-1).to(self.users.weight.dtype)  # unseen users: no id field
        total = self.users(users.clamp_min(0)) * known + masked_mean(*embed_history(self.history, history))
        if self.user_side is not None:
            total = total + self.user_side.embedding(self.user_side.rows(users)).sum(1)
        return torch.cat([total, torch.ones_like(total[:, :1])], 1)

    def _items(self, items: torch.Tensor) -> torch.Tensor:
        """(N, D + 1): the sum of the item's field vectors, and its linear and own pairwise terms."""
        trained = (self.sampler.item_share[items] > 0).unsqueeze(1).to(self.item_bias.weight.dtype)
        own = self.item_bias(items) * trained  # (N, 1); an item never seen in training has no bias
        if self.item_side is not None and self.item_linear is not None:  # the id is one of the features
            features = self.item_side.rows(items)
            if self.training:
                features = hide_ids(features, self.id_columns, self.id_dropout)
            fields = self.item_side.embedding(features)                        # (N, F, D)
            own = own + self.item_linear(self.item_side.encode(features))
        else:  # no item table: the id field alone, hidden as in the table
            if self.training and self.id_dropout > 0:
                trained = trained * (torch.rand_like(trained) >= self.id_dropout)
            fields = (self.items(items) * trained).unsqueeze(1)               # (N, 1, D)
        return torch.cat([fields.sum(1), own + self.pairwise(fields).unsqueeze(1)], 1)

    def forward(self, batch: Batch) -> SampledLogits:
        """Logits of each example against the batch's candidates."""
        users, items, history = indices(batch, "user", "item", "history")
        ids, log_q = self.sampler(items)
        logits, target = self.sampler.logits(self._queries(users, history), self._items(ids), ids,
                                             log_q if self.use_log_q else None)
        return SampledLogits(logits, target)

    def _query_vectors(self, users: np.ndarray, history: History | None) -> torch.Tensor:
        """(B, D + 1) user vectors; a user -1 is described by its history alone."""
        users_index, recent = users_and_recent(users, history, self.max_history)
        return self._queries(users_index, recent)

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, D + 1) every item's vector."""
        return self._items(torch.arange(self.num_items))
