"""The retrieval contract every candidate generator implements, trained by gradients or not.

A retrieval model is built from a retrieval ``Schema`` (``recfunnel.data.interactions.
retrieval_schema``: the ``user`` and ``item`` ids, the ``history`` sharing the item vocabulary,
and the user and item features) and answers on Batches of encoder codes (0 pads, 1 is out of
vocabulary, catalogue item ``i`` is code ``i + 2``; see ``query_batch`` for a query's columns):

- ``encode_query(batch)``: (B, D) query vectors, or (B, H, D) for H interests per user;
- ``encode_items(batch)``: (N, D) vectors of the items in ``batch`` (their ids, and their
  features where the model reads them);
- ``score(batch)``: (B, num_items) scores of every catalogue item (column ``i`` is code ``i + 2``);
  a vector model's is the inner product of its query and item vectors, so an ANN index can
  replace it. A user out of vocabulary is described by its history alone (a model that cannot
  fold such a user in returns any finite row; the Retriever gives users with no history at all
  the popularity list);
- ``similar(batch)``: (B, num_items) item-to-item scores of the items in ``batch``.

The Retriever maps raw ids to codes, excludes seen items and picks the top k. Inside, a model
keeps its tables in catalogue-index order and implements the index-space hooks ``_score``,
``_query_vectors``, ``_item_vectors`` and ``_similar`` (users and history items as indices, -1 for
none; see ``read_query``). Models that are not gradient-trained implement ``fit(interactions)``;
gradient-trained ones are ``nn.Module``s that build their own training ``Batch`` of codes
(``training_batch``), and whose ``forward`` returns ``SampledLogits`` for the ``RetrievalTask``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import (
    History,
    Interactions,
    catalogue_size,
    read_query,
    side_schema,
    to_index,
)
from recfunnel.errors import DataError, NotFittedError
from recfunnel.schema import Schema
from recfunnel.tasks import RetrievalTask, Task


class RetrievalModel:
    """Base of retrieval models; see the module docstring for the contract.

    Class attributes:
        learns_preferences: False for models that give every user the same list (popularity);
            the contract tests then skip the "learns a user's taste" checks.
        predicts_ratings: True for rating models: their score is a predicted rating of the
            Retriever's ``label`` column, evaluated by RMSE and MAE (``recfunnel.models.rating``).
        gradient_trained: True for ``nn.Module`` models trained by the Trainer.
        reads_item_features: True for models whose item side reads the item features.
        reads_seen: True for models that read a user's whole history (the query batch's ``seen``
            and ``live``); the others read only the recent ``history``, and their query batches
            leave the whole history out.
        trainer_defaults: Trainer options a gradient-trained model runs with unless the caller
            gives them (e.g. a smaller batch where a step's cost grows with the batch squared,
            as an in-batch softmax's does); the Retriever lays the caller's options over them.

    Attributes:
        num_users, num_items: The catalogue sizes of the schema's ``user`` and ``item`` ids.
        max_history: Length of the ``history`` sequence.
        user_features, item_features: The schema's user / item features, or None.
    """

    learns_preferences: ClassVar[bool] = True
    predicts_ratings: ClassVar[bool] = False
    gradient_trained: ClassVar[bool] = False
    reads_item_features: ClassVar[bool] = False
    reads_seen: ClassVar[bool] = True
    trainer_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.num_users, self.num_items = catalogue_size(schema, "user"), catalogue_size(schema, "item")
        self.max_history = int(schema["history"].max_len)  # type: ignore[union-attr]
        self.user_features, self.item_features = side_schema(schema, "user"), side_schema(schema, "item")

    # -- training (models without gradients) ----------------------------------------------------
    def fit(self, data: Interactions) -> RetrievalModel:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement fit(interactions)")

    # -- the contract, on Batches of codes ------------------------------------------------------
    @property
    def has_vectors(self) -> bool:
        """True when the model scores by inner products of query and item vectors."""
        return type(self)._item_vectors is not RetrievalModel._item_vectors

    def read(self, batch: Batch) -> tuple[np.ndarray, History]:
        """A query batch in this model's index space (see ``read_query``)."""
        return read_query(batch, num_items=self.num_items, max_history=self.max_history)

    def encode_query(self, batch: Batch) -> torch.Tensor:
        """(B, D) query vectors of a query batch, or (B, H, D) for H interests per user."""
        return self._query_vectors(*self.read(batch))

    def encode_items(self, batch: Batch) -> torch.Tensor:
        """(N, D) vectors of the items whose codes are ``batch.features["item"]``; an item out of
        vocabulary gets the zero vector (a model over item features overrides this)."""
        index = to_index(batch.features["item"])
        vectors = self.item_vectors()[index.clamp_min(0)]
        return vectors.masked_fill((index < 0).unsqueeze(-1), 0.0)

    def item_vectors(self) -> torch.Tensor:
        """(num_items, D) vectors of the whole catalogue, in index order (code ``i + 2`` at row ``i``)."""
        return self._item_vectors()

    def score(self, batch: Batch) -> torch.Tensor:
        """(B, num_items) scores of every catalogue item for a query batch."""
        return self._score(*self.read(batch))

    def similar(self, batch: Batch) -> torch.Tensor:
        """(B, num_items) similarity of each item in ``batch.features["item"]`` to every item.

        Raises:
            DataError: A code is padding or out of vocabulary: no item to be similar to.
        """
        items = to_index(batch.features["item"]).numpy()
        if (items < 0).any():
            raise DataError("similar() needs catalogue items; the batch holds padding or out-of-vocabulary codes "
                            f"at rows {np.flatnonzero(items < 0)[:5].tolist()}.")
        return self._similar(items)

    # -- index-space hooks ----------------------------------------------------------------------
    def _query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no query vectors")

    def _item_vectors(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no item vectors")

    def _score(self, users: np.ndarray, history: History) -> torch.Tensor:
        """By default query vectors dotted with the catalogue's vectors (the best interest's)."""
        queries, items = self._query_vectors(users, history), self.item_vectors()
        scores = queries @ items.T
        return scores if queries.ndim == 2 else scores.amax(1)

    def _similar(self, items: np.ndarray) -> torch.Tensor:
        """Cosine of item vectors."""
        vectors = self.item_vectors()
        unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return unit[torch.as_tensor(items)] @ unit.T

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement state_dict()")

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement load_state_dict(state)")


def rows_or_zeros(table: torch.Tensor, users: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Rows of ``table`` for user indices (a copy), zeros for -1 (unseen users), and where those are.

    Example:
        >>> rows, unseen = rows_or_zeros(torch.ones(2, 3), np.array([1, -1]))
        >>> rows.tolist(), unseen.tolist()
        ([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [1])
    """
    users = np.asarray(users, dtype=np.int64)
    out = table[torch.from_numpy(np.maximum(users, 0))].clone()
    unseen = np.flatnonzero(users < 0)
    out[torch.from_numpy(unseen)] = 0.0
    return out, unseen


def users_and_recent(users: np.ndarray, history: History | None, max_history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A query's (B,) user indices and (B, L) recent items (index space, -1 padded; all -1 without
    a history), as the towers of the history-reading models take them.

    Example:
        >>> users, recent = users_and_recent(np.array([3, -1]), None, 2)
        >>> users.tolist(), recent.tolist()
        ([3, -1], [[-1, -1], [-1, -1]])
    """
    index = torch.as_tensor(np.asarray(users, dtype=np.int64))
    recent = torch.from_numpy(history.recent) if history is not None else torch.full((len(index), max_history), -1)
    return index, recent


def indices(batch: Batch, *names: str) -> tuple[torch.Tensor, ...]:
    """Columns of a batch of codes as catalogue indices (-1 for padding and OOV), for table lookups."""
    return tuple(to_index(batch.features[name]) for name in names)


class TensorStateMixin:
    """state_dict/load_state_dict for models without gradients that keep tensors in ``_state``."""

    _state_keys: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, torch.Tensor]:
        missing = [k for k in self._state_keys if getattr(self, k, None) is None]
        if missing:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(...) first.")
        return {k: getattr(self, k) for k in self._state_keys}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> TensorStateMixin:
        missing = [k for k in self._state_keys if k not in state]
        if missing:
            raise KeyError(", ".join(missing))
        for key in self._state_keys:
            setattr(self, key, state[key])
        return self


class SampledLogits(tuple):
    """``(logits (B, C), target (B,))``: what a gradient-trained retrieval model's forward returns.

    ``binary`` asks for a binary cross-entropy per candidate (the target column is the positive,
    every other column a negative: SASRec's loss with one sampled negative) instead of a softmax
    cross-entropy over the columns.
    """

    binary: bool

    def __new__(cls, logits: torch.Tensor, target: torch.Tensor, *, binary: bool = False) -> SampledLogits:
        out = super().__new__(cls, (logits, target))
        out.binary = binary
        return out

    @property
    def logits(self) -> torch.Tensor:
        return self[0]

    @property
    def target(self) -> torch.Tensor:
        return self[1]


class RetrievalModule(nn.Module, RetrievalModel):
    """Base of gradient-trained retrieval models (trained by the Trainer with a ``RetrievalTask``)."""

    gradient_trained: ClassVar[bool] = True
    reads_seen: ClassVar[bool] = False  # their queries read the recent history

    def __init__(self, schema: Schema) -> None:
        nn.Module.__init__(self)
        RetrievalModel.__init__(self, schema)

    def item_vectors(self) -> torch.Tensor:
        """The item tower's output over the whole catalogue, computed once per eval-mode session:
        a request then costs one query-tower pass and a matrix product, not a pass over every item."""
        if self.training:
            return self._item_vectors()
        cache = self.__dict__.get("_serving_vectors")
        if cache is None:
            with torch.no_grad():
                cache = self._item_vectors().detach()
            self.__dict__["_serving_vectors"] = cache
        return cache

    def train(self, mode: bool = True) -> RetrievalModule:
        self.__dict__.pop("_serving_vectors", None)  # weights may change from here on
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self.__dict__.pop("_serving_vectors", None)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def training_task(self, monitor: str) -> Task:
        """The task the Trainer trains this model with: a sampled softmax (rating models: a regression)."""
        return RetrievalTask(monitor=monitor)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:  # pragma: no cover - abstract
        """The training examples built from the interactions, in codes."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_batch(interactions)")

    def forward(self, batch: Batch) -> SampledLogits:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> SampledLogits")
