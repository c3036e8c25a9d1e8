"""Popularity: every user gets the most interacted-with items, optionally with time decay."""

from __future__ import annotations

import math

import numpy as np
import torch

from recfunnel.data.interactions import History, Interactions
from recfunnel.errors import ConfigError, NotFittedError
from recfunnel.models.base import register_model
from recfunnel.models.retrieval.base import RetrievalModel, TensorStateMixin
from recfunnel.schema import Schema


@register_model("popularity", kind="retrieval")
class Popularity(TensorStateMixin, RetrievalModel):
    """Most popular items, all-time or time-decayed: the floor and the cold-start fallback.

    Args:
        schema: The retrieval schema (ids and catalogue sizes).
        half_life: With a time column, an interaction ``half_life`` time units (the time
            column's own units, e.g. seconds) older than the latest one counts half; None counts
            every interaction equally.

    Example:
        >>> import pandas as pd
        >>> from recfunnel.data.interactions import query_batch
        >>> data = Interactions.from_frame(pd.DataFrame({"user_id": [1, 2, 2], "item_id": [7, 7, 8]}))
        >>> model = Popularity(data.schema()).fit(data)
        >>> model.score(query_batch(np.array([0]), None)).tolist()
        [[2.0, 1.0]]
    """

    learns_preferences = False
    reads_seen = False  # the same list for everyone
    _state_keys = ("counts",)

    def __init__(self, schema: Schema, *, half_life: float | None = None) -> None:
        super().__init__(schema)
        if half_life is not None and not half_life > 0:
            raise ConfigError(f"popularity half_life must be > 0 (or None); got {half_life!r}.")
        self.half_life = half_life
        self.counts: torch.Tensor | None = None

    def fit(self, data: Interactions) -> Popularity:
        data = data.known()
        weights = np.ones(len(data)) if data.weights is None else data.weights.astype(np.float64)
        if self.half_life is not None:
            if data.timestamps is None:
                raise ConfigError("popularity half_life needs a time column (--time-col).")
            age = data.timestamps.max() - data.timestamps
            weights = weights * np.exp(-math.log(2) * age / self.half_life)
        counts = np.bincount(data.items, weights=weights, minlength=self.num_items)
        self.counts = torch.from_numpy(counts.astype(np.float32))
        return self

    def _score(self, users: np.ndarray, history: History | None) -> torch.Tensor:
        if self.counts is None:
            raise NotFittedError("Popularity is not fitted yet; call fit(...) first.")
        return self.counts.expand(len(users), -1).clone()

    def _similar(self, items: np.ndarray) -> torch.Tensor:
        """Popular items, whatever the given item (a fallback, not a similarity)."""
        return self._score(np.asarray(items), None)
