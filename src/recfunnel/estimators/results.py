"""The one result type of every recommender: a ``Recommendation`` per user, ``Recommendations`` for many.

A Retriever's lists and a Funnel's final lists are the same objects: each row holds raw item ids,
their scores and the recall sources that proposed them; a funnel adds reasons, the ranker's
feature effects and the items' attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

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
        objectives: A multi-task ranker's probability of each objective for each item (its
            ``scores`` are their fused combination); empty for a ranker of one label.
    """

    user_id: Any
    item_ids: list[Any]
    scores: list[float]
    sources: list[list[str]]
    reasons: list[list[str]] = field(default_factory=list)
    features: list[list[dict[str, Any]]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    shortfall: int = 0
    objectives: list[dict[str, float]] = field(default_factory=list)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready: one dict per item with its attributes, score, sources and reasons (and, from
        a multi-task ranker, ``objectives``: each objective's probability next to the fused score)."""
        size = len(self.item_ids)
        objectives: list[dict[str, float] | None] = list(self.objectives) or [None] * size
        return [{**attrs, "item_id": item, "score": score, "sources": src, "reasons": why, "features": feats,
                 **({"objectives": found} if found is not None else {})}
                for item, score, src, why, feats, attrs, found in zip(
                    self.item_ids, self.scores, self.sources, self.reasons or [[]] * size,
                    self.features or [[]] * size, self.attributes or [{}] * size,
                    objectives, strict=True)]


class Recommendations(Sequence[Recommendation]):
    """Several users' lists: a sequence of ``Recommendation`` with array views for batch use.

    ``items`` (B, width) raw ids (None where a list is short), ``scores`` (B, width) (-inf there),
    ``valid`` (B, width) and ``keys`` (B,); ``key`` names what the lists are for: "user_id" for
    recommendations, "query_item" for similar items. Lists made from arrays (a Retriever's) keep
    them, and build a user's ``Recommendation`` only when it is asked for; lists made from rows (a
    funnel's) build the arrays once, when first asked for.

    Example:
        >>> lists = Recommendations([Recommendation("u1", ["a", "b"], [2.0, 1.0], [["pop"], ["pop"]]),
        ...                          Recommendation("u2", ["c"], [5.0], [["pop"]])], width=2)
        >>> lists.items.tolist(), int(lists.valid.sum()), lists[1].item_ids
        ([['a', 'b'], ['c', None]], 3, ['c'])
    """

    def __init__(self, rows: Iterable[Recommendation] = (), *, key: str = "user_id", width: int | None = None) -> None:
        self._rows: list[Recommendation | None] = list(rows)
        self.key = key
        self.width = max([len(r.item_ids) for r in self._rows if r is not None] + [width or 0])
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._source = ""

    @classmethod
    def from_arrays(cls, keys: np.ndarray, items: np.ndarray, scores: np.ndarray, valid: np.ndarray, *,
                    source: str, key: str = "user_id") -> Recommendations:
        """Lists from (B, k) arrays of raw ids and scores, ``valid`` marking the places that hold an item."""
        lists = cls(key=key, width=items.shape[1])
        items = np.asarray(items, dtype=object).copy()
        items[~valid] = None
        lists._rows = [None] * len(keys)
        lists._arrays = (np.asarray(keys, dtype=object), items,
                         np.where(valid, scores, -np.inf).astype(np.float32), np.asarray(valid, dtype=bool))
        lists._source = source
        return lists

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Recommendation: ...

    @overload
    def __getitem__(self, index: slice) -> list[Recommendation]: ...

    def __getitem__(self, index: int | slice) -> Recommendation | list[Recommendation]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        row = self._rows[index]
        if row is None:  # made from arrays: this user's row, built now
            keys, items, scores, valid = self._views()
            ok = valid[index]
            kept = [plain(i) for i in items[index][ok]]
            row = Recommendation(plain(keys[index]), kept, scores[index][ok].astype(float).tolist(),
                                 [[self._source]] * len(kept))
            self._rows[index] = row
        return row

    def _views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            rows = [self[i] for i in range(len(self))]
            items = np.full((len(rows), self.width), None, dtype=object)
            scores = np.full((len(rows), self.width), -np.inf, dtype=np.float32)
            for position, r in enumerate(rows):  # once per list, for a funnel's few users
                items[position, :len(r.item_ids)] = r.item_ids
                scores[position, :len(r.scores)] = r.scores
            keys = np.empty(len(rows), dtype=object)
            keys[:] = [r.user_id for r in rows]
            self._arrays = (keys, items, scores, np.arange(self.width)[None, :] < np.array(
                [len(r.item_ids) for r in rows], dtype=np.int64)[:, None])
        return self._arrays

    @property
    def keys(self) -> np.ndarray:
        return self._views()[0]

    @property
    def items(self) -> np.ndarray:
        return self._views()[1]

    @property
    def scores(self) -> np.ndarray:
        return self._views()[2]

    @property
    def valid(self) -> np.ndarray:
        return self._views()[3]

    def to_frame(self, key: str | None = None) -> pd.DataFrame:
        """Long format: one row per (key, rank) with the item and its score."""
        keys, items, scores, valid = self._views()
        rows, ranks = np.nonzero(valid)
        return pd.DataFrame({key or self.key: keys[rows], "rank": ranks + 1, "item_id": items[rows, ranks],
                             "score": scores[rows, ranks]})

    def to_records(self, key: str | None = None) -> list[dict[str, Any]]:
        """JSON-ready: ``[{key: id, "items": [{"item_id": ..., "score": ...}, ...]}, ...]``."""
        key = key or self.key
        return [{key: r.user_id, "items": [{"item_id": i, "score": s} for i, s in zip(r.item_ids, r.scores,
                                                                                       strict=True)]}
                for r in self]
