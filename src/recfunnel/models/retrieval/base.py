"""The retrieval contract every candidate generator implements, trained by gradients or not.

Models work in index space (users and items are 0..n-1, see ``Interactions``); the ``Retriever``
estimator maps raw ids, excludes seen items and picks the top k. A model answers three questions:

- ``score(users, history)``: (B, num_items) scores for users. A user index of -1 is a user
  unseen in training, described by ``history`` alone (a model that cannot fold such a user in
  returns any finite row; the Retriever gives users with no history at all the popularity list);
- ``similar(items)``: (B, num_items) item-to-item scores;
- ``query_vectors`` / ``item_vectors`` where the model has vectors (then ``score`` is their dot
  product and an ANN index can replace it).

Models that are not gradient-trained implement ``fit(interactions)``. Gradient-trained ones are
``nn.Module``s: they build their own training ``Batch`` (``training_batch``) and ``forward``
returns ``SampledLogits`` for the Trainer's ``RetrievalTask``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, InteractionInfo, Interactions
from recfunnel.errors import NotFittedError


class RetrievalModel:
    """Base of retrieval models; see the module docstring for the contract.

    Class attributes:
        learns_preferences: False for models that give every user the same list (popularity);
            the contract tests then skip the "learns a user's taste" checks.
        gradient_trained: True for ``nn.Module`` models trained by the Trainer.
        reads_item_features: True for models whose item side reads the item attribute table.
        trainer_defaults: Trainer options a gradient-trained model runs with unless the caller
            gives them (e.g. a smaller batch where a step's cost grows with the batch squared,
            as an in-batch softmax's does); the Retriever lays the caller's options over them.
    """

    learns_preferences: ClassVar[bool] = True
    gradient_trained: ClassVar[bool] = False
    reads_item_features: ClassVar[bool] = False
    trainer_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, info: InteractionInfo) -> None:
        self.info = info

    # -- training (models without gradients) ----------------------------------------------------
    def fit(self, data: Interactions) -> RetrievalModel:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement fit(interactions)")

    # -- scoring ----------------------------------------------------------------------------------
    @property
    def has_vectors(self) -> bool:
        """True when the model scores by inner products of query and item vectors."""
        return type(self).item_vectors is not RetrievalModel.item_vectors

    def query_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, D) user/query vectors, or (B, H, D) for H interests per user."""
        raise NotImplementedError(f"{type(self).__name__} has no query vectors")

    def item_vectors(self) -> torch.Tensor:
        """(num_items, D) item vectors."""
        raise NotImplementedError(f"{type(self).__name__} has no item vectors")

    def serving_item_vectors(self) -> torch.Tensor:
        """``item_vectors()`` for scoring; gradient models cache them while in eval mode."""
        return self.item_vectors()

    def score(self, users: np.ndarray, history: History) -> torch.Tensor:
        """(B, num_items) scores; by default query vectors dotted with item vectors."""
        queries, items = self.query_vectors(users, history), self.serving_item_vectors()
        scores = queries @ items.T
        return scores if queries.ndim == 2 else scores.amax(1)

    def similar(self, items: np.ndarray) -> torch.Tensor:
        """(B, num_items) similarity of each given item to every item; cosine of item vectors."""
        vectors = self.serving_item_vectors()
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
    """``(logits (B, C), target (B,))``: what a gradient-trained retrieval model's forward returns."""

    def __new__(cls, logits: torch.Tensor, target: torch.Tensor) -> SampledLogits:
        return super().__new__(cls, (logits, target))

    @property
    def logits(self) -> torch.Tensor:
        return self[0]

    @property
    def target(self) -> torch.Tensor:
        return self[1]


class RetrievalModule(nn.Module, RetrievalModel):
    """Base of gradient-trained retrieval models (trained by the Trainer with a ``RetrievalTask``)."""

    gradient_trained: ClassVar[bool] = True

    def __init__(self, info: InteractionInfo) -> None:
        nn.Module.__init__(self)
        self.info = info

    def serving_item_vectors(self) -> torch.Tensor:
        """The item tower's output over the whole catalogue, computed once per eval-mode session:
        a request then costs one query-tower pass and a matrix product, not a pass over every item."""
        if self.training:
            return self.item_vectors()
        cache = self.__dict__.get("_serving_vectors")
        if cache is None:
            with torch.no_grad():
                cache = self.item_vectors().detach()
            self.__dict__["_serving_vectors"] = cache
        return cache

    def train(self, mode: bool = True) -> RetrievalModule:
        self.__dict__.pop("_serving_vectors", None)  # weights may change from here on
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self.__dict__.pop("_serving_vectors", None)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def training_batch(self, data: Interactions, *, seed: int) -> Batch:  # pragma: no cover - abstract
        """The encoded training examples built from the interactions."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_batch(interactions)")

    def forward(self, batch: Batch) -> SampledLogits:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> SampledLogits")
