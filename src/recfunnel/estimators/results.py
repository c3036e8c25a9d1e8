"""The one result type of every recommender: a ``Recommendation`` per user, ``Recommendations`` for many.

A Retriever's lists and a Funnel's final lists are the same objects: each row holds raw item ids,
their scores and the recall sources that proposed them; a funnel adds reasons, the ranker's
feature effects and the items' attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recfunnel.data.checks import plain


@dataclass
class Recommendation:
    """One user's list (or one item's similar items): raw item ids, scores, sources, and why.

    Attributes:
        user_id: The user the list is for (the query item, for similar items).
        item_ids: Raw item ids, best first.
        scores: The last stage's score of each item.
        sources: The recall sources that proposed each item.
        reasons: Why each item is there, in words (a funnel's explanations).
        features: The ranker's item features that raised each item's score.
        attributes: Each item's catalogue attributes (title, category, ...).
        shortfall: Places short of the requested k (fewer candidates passed filters and rerankers).
    """

    user_id: Any
    item_ids: list[Any]
    scores: list[float]
    sources: list[list[str]]
    reasons: list[list[str]] = field(default_factory=list)
    features: list[list[dict[str, Any]]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    shortfall: int = 0

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready: one dict per item with its attributes, score, sources and reasons."""
        return [{**attrs, "item_id": item, "score": score, "sources": src, "reasons": why, "features": feats}
                for item, score, src, why, feats, attrs in zip(
                    self.item_ids, self.scores, self.sources, self.reasons or [[]] * len(self.item_ids),
                    self.features or [[]] * len(self.item_ids),
                    self.attributes or [{}] * len(self.item_ids), strict=True)]


class Recommendations(list[Recommendation]):
    """Several users' lists: a list of ``Recommendation`` with array views for batch use.

    ``items`` (B, width) raw ids (None where a list is short), ``scores`` (B, width) (-inf there),
    ``valid`` (B, width) and ``keys`` (B,); ``key`` names what the lists are for: "user_id" for
    recommendations, "query_item" for similar items.

    Example:
        >>> lists = Recommendations([Recommendation("u1", ["a", "b"], [2.0, 1.0], [["pop"], ["pop"]]),
        ...                          Recommendation("u2", ["c"], [5.0], [["pop"]])], width=2)
        >>> lists.items.tolist(), lists.valid.sum()
        ([['a', 'b'], ['c', None]], np.int64(3))
    """

    def __init__(self, rows: Iterable[Recommendation] = (), *, key: str = "user_id", width: int | None = None) -> None:
        super().__init__(rows)
        self.key = key
        self.width = max([len(r.item_ids) for r in self] + [width or 0])

    @classmethod
    def from_arrays(cls, keys: np.ndarray, items: np.ndarray, scores: np.ndarray, valid: np.ndarray, *,
                    source: str, key: str = "user_id") -> Recommendations:
        """Lists from (B, k) arrays of raw ids and scores, ``valid`` marking the places that hold an item."""
        rows = []
        for user, ids, values, ok in zip(keys, items, scores, valid, strict=True):  # one object per user
            kept = [plain(i) for i in ids[ok]]
            rows.append(Recommendation(plain(user), kept, [float(s) for s in values[ok]], [[source]] * len(kept)))
        return cls(rows, key=key, width=items.shape[1])

    @property
    def keys(self) -> np.ndarray:
        out = np.empty(len(self), dtype=object)
        out[:] = [r.user_id for r in self]
        return out

    @property
    def valid(self) -> np.ndarray:
        return np.arange(self.width)[None, :] < np.array([len(r.item_ids) for r in self], dtype=np.int64)[:, None]

    @property
    def items(self) -> np.ndarray:
        out = np.full((len(self), self.width), None, dtype=object)
        for row, r in enumerate(self):
            out[row, :len(r.item_ids)] = r.item_ids
        return out

    @property
    def scores(self) -> np.ndarray:
        out = np.full((len(self), self.width), -np.inf, dtype=np.float32)
        for row, r in enumerate(self):
            out[row, :len(r.scores)] = r.scores
        return out

    def to_frame(self, key: str | None = None) -> pd.DataFrame:
        """Long format: one row per (key, rank) with the item and its score."""
        key = key or self.key
        lengths = [len(r.item_ids) for r in self]
        return pd.DataFrame({key: np.repeat(self.keys, lengths),
                             "rank": np.concatenate([np.arange(1, n + 1) for n in lengths] or [np.zeros(0, int)]),
                             "item_id": [i for r in self for i in r.item_ids],
                             "score": np.asarray([s for r in self for s in r.scores], dtype=np.float32)})

    def to_records(self, key: str | None = None) -> list[dict[str, Any]]:
        """JSON-ready: ``[{key: id, "items": [{"item_id": ..., "score": ...}, ...]}, ...]``."""
        key = key or self.key
        return [{key: r.user_id, "items": [{"item_id": i, "score": s} for i, s in zip(r.item_ids, r.scores,
                                                                                       strict=True)]}
                for r in self]
