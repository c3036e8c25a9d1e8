"""Recall sources: a trained Retriever, or the catalogue's items added since training."""

from __future__ import annotations

from typing import Any

import numpy as np

from recfunnel.data.interactions import lookup_ids
from recfunnel.errors import ConfigError
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel.catalogue import Catalogue


class Recall:
    """Candidates from a fitted :class:`~recfunnel.Retriever` (two-tower, ItemCF, popularity, ...).

    Args:
        retriever: A fitted Retriever (or one loaded with ``recfunnel.load``).
        k: Candidates to ask for per user.
        name: The source's name in responses and reports (default: the model's name).

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"]})
        >>> Recall(Retriever("popularity").fit(frame), k=50).name
        'popularity'
    """

    def __init__(self, retriever: Retriever, *, k: int = 100, name: str | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"recall k must be a positive integer; got {k!r}.")
        retriever._fitted()  # a NotFittedError now, not at the first request
        self.retriever, self.k = retriever, int(k)
        self.name = name or retriever.model_name
        self._unit: tuple[Any, np.ndarray] | None = None

    def to_catalogue(self, catalogue: Catalogue) -> np.ndarray:
        """Catalogue index of each of the retriever's item indices (cached per catalogue version)."""
        ids = self.retriever.data_.item_ids.ids  # type: ignore[union-attr]
        return catalogue.derived((self, "map"), lambda state: lookup_ids(state.lookup, ids))

    def candidates(self, users: np.ndarray, catalogue: Catalogue, recent: list[list[Any]] | None) -> np.ndarray:
        """(B, k) catalogue indices, best first, -1 where the retriever had fewer to give."""
        return self.scored(users, catalogue, recent)[0]

    def scored(self, users: np.ndarray, catalogue: Catalogue,
               recent: list[list[Any]] | None) -> tuple[np.ndarray, np.ndarray]:
        """``candidates`` with the retriever's own score of each (B, k), -inf at empty places."""
        _, items, scores = self.retriever.top_indices(users, self.k, exclude_seen=True, recent=recent)
        found = np.where(items >= 0, self.to_catalogue(catalogue)[np.maximum(items, 0)], -1)
        scores = np.where(found >= 0, scores, -np.inf).astype(np.float32)
        fresh = self._fresh_vectors(catalogue)
        if fresh is None:
            return found, scores
        # items added after training, placed by the item tower from their attributes alone
        queries = self.retriever.encode_query(users, recent=recent)
        fresh_scores = queries @ fresh.T if queries.ndim == 2 else (queries @ fresh.T).max(1)  # (B, F)
        both = np.concatenate([np.where(found >= 0, scores, -np.inf), fresh_scores], axis=1)
        index = np.concatenate([found, np.broadcast_to(np.arange(catalogue.num_trained, len(catalogue)),
                                                       fresh_scores.shape)], axis=1)
        best = np.argsort(-both, axis=1, kind="stable")[:, : self.k]
        kept = np.take_along_axis(both, best, 1).astype(np.float32)
        return np.where(np.isfinite(kept), np.take_along_axis(index, best, 1), -1), kept

    def _fresh_vectors(self, catalogue: Catalogue) -> np.ndarray | None:
        """Vectors of the catalogue's new items from the retriever's item tower (cached per version)."""
        if len(catalogue) == catalogue.num_trained:
            return None
        trained = catalogue.num_trained
        return catalogue.derived((self, "fresh"),
                                 lambda state: self.retriever.encode_new_items(state.table.iloc[trained:]))

    def unit_vectors(self) -> np.ndarray:
        """The retriever's own item vectors scaled to unit length, in its item order: computed once
        per fitted model (an item tower over every item costs most of a second at 100k items),
        not at every catalogue change."""
        model = self.retriever.model_
        if self._unit is None or self._unit[0] is not model:
            own = self.retriever.encode_items()
            self._unit = (model, own / np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12))
        return self._unit[1]

    def warm(self, catalogue: Catalogue) -> None:
        """Map and encode the catalogue's items now rather than in the next request."""
        self.to_catalogue(catalogue)
        self._fresh_vectors(catalogue)

    def similar(self, item: Any, k: int, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
        """(k,) catalogue indices of items similar to one raw item id (-1 for none), and their scores."""
        lists = self.retriever.similar_items([item], k)
        found = np.where(lists.valid[0], catalogue.index(np.where(lists.valid[0], lists.items[0], 0)), -1)
        return found, lists.scores[0]

    def knows_item(self, item: Any) -> bool:
        return bool(self.retriever.data_.item_ids.index([item])[0] >= 0)  # type: ignore[union-attr]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k}


class NewItems:
    """Items added to the catalogue after training (``POST /items``), before anyone used them.

    A new item has no interactions, so no trained model can propose it; this source offers the
    newest ones in the categories of the user's history (all categories for a user without one),
    so fresh stock gets impressions and the ranker scores it from its attributes.

    A ranker trained before an item existed scores it without a track record (no popularity, no
    recall model proposing it), so it would rank below every proven item; ``places`` reserves the
    last places of each final list for the best new items the rerankers let through.

    Args:
        k: Candidates per user.
        column: The attribute that groups items (e.g. "category"); None to ignore the history.
        places: Places of each final list kept for new items (0: compete on the ranker's score).
    """

    name = "new"

    def __init__(self, *, k: int = 20, column: str | None = "category", places: int = 1) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"new-item recall k must be a positive integer; got {k!r}.")
        if isinstance(places, bool) or not isinstance(places, (int, np.integer)) or not 0 <= places <= k:
            raise ConfigError(f"new-item places must be an integer in [0, k={k}]; got {places!r}.")
        self.k, self.column, self.places = int(k), column, int(places)

    def candidates(self, history: np.ndarray, catalogue: Catalogue) -> np.ndarray:
        """(B, k) catalogue indices of new items, ordered by the user's interest in their group.

        Args:
            history: (B, H) catalogue indices of the users' recent items, -1 padded.
        """
        return self.scored(history, catalogue)[0]

    def scored(self, history: np.ndarray, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
        """``candidates`` with each item's score: the share of the user's recent items in its group."""
        users = len(history)
        fresh = np.arange(catalogue.num_trained, len(catalogue))[::-1]  # newest first
        if fresh.size == 0:
            return np.full((users, 0), -1, np.int64), np.full((users, 0), -np.inf, np.float32)
        interest = np.zeros((users, fresh.size), np.float32)
        if self.column is not None and catalogue.has(self.column):
            codes = catalogue.codes(self.column)
            groups = int(codes.max(initial=-1)) + 2
            seen = np.where(history >= 0, codes[np.maximum(history, 0)] + 1, 0)  # 0 = padding/missing
            counts = np.zeros((users, groups), np.float32)
            np.add.at(counts, (np.repeat(np.arange(users), seen.shape[1]), seen.ravel()), 1.0)
            counts[:, 0] = 0.0
            interest = counts[:, codes[fresh] + 1]  # (B, F)
        order = np.argsort(-interest, axis=1, kind="stable")[:, : self.k]  # stable: newest first on ties
        share = np.take_along_axis(interest, order, 1) / np.maximum((history >= 0).sum(1, keepdims=True), 1)
        return fresh[order], share.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "column": self.column, "places": self.places}
