"""Two-tower retrieval: user and item towers trained by a log-Q corrected in-batch softmax."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, Interactions, to_index
from recfunnel.errors import ConfigError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import RetrievalModule, SampledLogits, indices, users_and_recent
from recfunnel.nn import MLP
from recfunnel.nn.pooling import embed_history, masked_mean
from recfunnel.nn.sampling import CandidateSampler, next_item_batch
from recfunnel.nn.side_features import SideFeatures, fill_sides, hide_ids
from recfunnel.schema import Schema


@register_model("two_tower", kind="retrieval")
class TwoTower(RetrievalModule):
    """DSSM-style two towers (Huang et al., CIKM 2013) trained as in Yi et al., RecSys 2019.

    The user tower reads a user-id embedding, the mean embedding of the user's recent items and
    the user's features (when a user table was given) through an MLP; the item tower reads the
    item's features (its table includes the item id, so an item without interactions is encoded
    from its other features) or, without an item table, an item-id embedding. Both outputs are
    L2-normalised. Every interaction is an example whose history is the user's items before it;
    the loss is a softmax over the batch's positives plus ``num_negatives`` uniform samples
    (mixed negatives, Yang et al., 2020), with scores divided by ``temperature`` and the log
    expected count of each candidate subtracted (log-Q correction). In training, the item-id
    column of a fraction ``id_dropout`` of the candidates is replaced by the out-of-vocabulary
    id (as in DropoutNet, Volkovs et al., NeurIPS 2017), so the tower also learns to place an
    item from its other features alone, as it must for a new item.

    Training defaults: batches of 1024 (``trainer_defaults``; the Trainer's own default, 4096, is
    set for click models). A step scores every example against all B + M candidates, so its cost
    per example grows with B: on MovieLens 100K (2 busy CPU threads) the 10 default epochs took
    942 s at 4096 and 271 s at 1024, with recall@10 0.185 and 0.197 (BENCHMARKS.md, "Defaults
    against the peers' defaults: retrieval"). A ``trainer={"batch_size": ...}`` of the caller's
    still wins.

    Args:
        schema: The retrieval schema (ids, history length, user and item features).
        embedding_dim: D, the size of every embedding and of the output vectors.
        hidden_units: Hidden widths of each tower's MLP (its output is D).
        temperature: Divides the cosine scores in training.
        num_negatives: Uniformly sampled extra negatives per batch.
        dropout: Dropout after each hidden layer of the towers.
        use_log_q: Subtract each candidate's log expected count from its logit.
        id_dropout: Share of training candidates whose item id is hidden from the item tower.

    Example:
        >>> import pandas as pd
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1]}))
        >>> model = TwoTower(data.schema(), embedding_dim=8, num_negatives=2)
        >>> model(model.training_batch(data, seed=0)).logits.shape  # 3 rows x (3 positives + 2)
        torch.Size([3, 5])
    """

    reads_item_features = True
    trainer_defaults = {"batch_size": 1024}  # an in-batch softmax step costs O(B (B + M)); see above

    test_params = {"embedding_dim": 16, "hidden_units": (32,), "num_negatives": 8}

    def __init__(self, schema: Schema, *, embedding_dim: int = 64, hidden_units: tuple[int, ...] = (256,),
                 temperature: float = 0.05, num_negatives: int = 256, dropout: float = 0.1,
                 use_log_q: bool = True, id_dropout: float = 0.1) -> None:
        super().__init__(schema)
        if not temperature > 0 or not 0 <= id_dropout < 1:
            raise ConfigError(f"two_tower needs temperature > 0 and 0 <= id_dropout < 1; got {temperature!r}, "
                              f"{id_dropout!r}.")
        dim = embedding_dim
        self.temperature, self.use_log_q, self.id_dropout = float(temperature), use_log_q, float(id_dropout)
        self.users = nn.Embedding(self.num_users, dim, sparse=True)
        self.items = nn.Embedding(self.num_items + 1, dim, sparse=True)  # row 0 pads histories
        for table in (self.users, self.items):
            nn.init.normal_(table.weight, std=0.1)
        profile = self.user_features
        self.user_side = SideFeatures(profile, self.num_users, dim) if profile else None
        self.item_side = SideFeatures(self.item_features, self.num_items, dim) if self.item_features else None
        self.id_columns = [f.name for f in self.item_features.by_role("item")] if self.item_features else []
        user_in = 2 * dim + (self.user_side.output_dim if self.user_side else 0)
        item_in = self.item_side.output_dim if self.item_side else dim
        self.user_tower = MLP(user_in, [*hidden_units, dim], dropout=dropout)
        self.item_tower = MLP(item_in, [*hidden_units, dim], dropout=dropout)
        self.sampler = CandidateSampler(self.num_items, num_negatives=num_negatives)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:
        """Fill the feature tables and item shares; one example per interaction."""
        self.sampler.fit(data)
        fill_sides("two_tower", {"user": self.user_side, "item": self.item_side}, data, id_columns=self.id_columns,
                   unseen=self.sampler.item_share == 0)
        return next_item_batch(data, self.max_history)

    def _queries(self, users: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        known = (users >= 0).unsqueeze(-1).to(self.users.weight.dtype)     # unseen users: no id vector
        parts = [self.users(users.clamp_min(0)) * known, masked_mean(*embed_history(self.items, history))]
        if self.user_side is not None:
            parts.append(self.user_side(users))
        return F.normalize(self.user_tower(torch.cat(parts, 1)), dim=-1)   # (B, D)

    def encode_items(self, batch: Batch) -> torch.Tensor:
        """(N, D) vectors of the items in ``batch``: from the item features the batch carries (an
        item added after training is described by them alone), else from the catalogue's rows."""
        if self.item_side is not None and self.item_features is not None \
                and all(name in batch.features for name in self.item_features.names):
            return self._from_features({name: batch.features[name] for name in self.item_features.names})
        return self._items(to_index(batch.features["item"]))

    def _from_features(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.item_side is None:
            raise ConfigError("this two_tower has no item features to encode; fit it with item_features=... .")
        return F.normalize(self.item_tower(self.item_side.encode(features)), dim=-1)

    def _items(self, items: torch.Tensor) -> torch.Tensor:
        if self.item_side is not None:
            features = self.item_side.rows(items)
            if self.training:
                features = hide_ids(features, self.id_columns, self.id_dropout)
            return self._from_features(features)
        return F.normalize(self.item_tower(self.items(items + 1)), dim=-1)  # (N, D)

    def forward(self, batch: Batch) -> SampledLogits:
        """Logits of each example against the batch's candidates."""
        users, items, history = indices(batch, "user", "item", "history")
        queries = self._queries(users, history)
        ids, log_q = self.sampler(items)
        logits, target = self.sampler.logits(queries, self._items(ids), ids, log_q if self.use_log_q else None,
                                             temperature=self.temperature)
        return SampledLogits(logits, target)

    def _query_vectors(self, users: np.ndarray, history: History | None) -> torch.Tensor:
        """(B, D) user vectors; a user -1 is described by its history alone."""
        users_index, recent = users_and_recent(users, history, self.max_history)
        return self._queries(users_index, recent)

    def _item_vectors(self) -> torch.Tensor:
        """(num_items, D) every item through the item tower."""
        return self._items(torch.arange(self.num_items))
