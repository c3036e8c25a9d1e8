"""Recall sources: a trained Retriever, or the catalogue's items added since training.

Every source is a ``RecallStage``: ``source(query) -> Candidates``, best first. The funnel asks a
source nothing else about what it is; the optional abilities below have defaults for sources
that lack them (a source of new items knows no users, explains nothing, has no vectors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from recfunnel.data.interactions import IdMap, Interactions, lookup_ids
from recfunnel.errors import ConfigError, NotFittedError
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel.candidates import Candidates, Query
from recfunnel.funnel.catalogue import Catalogue
from recfunnel.models.retrieval.base import RetrievalModel

#: The most candidates one source proposes per user: a funnel YAML or artifact cannot ask for more
#: (a request holds users x k candidates in memory).
MAX_RECALL_K = 100_000


class RecallStage:
    """A recall source: ``__call__(query) -> Candidates``, each user's list best first.

    Attributes:
        name: The source's name in responses and reports.
        k: Candidates it proposes per user.
        columns: The user and item id columns of the interactions it learnt from (``user_col``,
            ``item_col``, ...), or None for a source that learnt from none.
        places: Places of each final list it reserves for its own items (see ``NewItems``).
    """

    name: str = "recall"
    k: int = 0
    columns: dict[str, Any] | None = None
    places: int = 0

    def __call__(self, query: Query) -> Candidates:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(query) -> Candidates")

    # -- optional abilities -----------------------------------------------------------------------
    @property
    def has_vectors(self) -> bool:
        """True when ``unit_vectors`` gives item vectors (for diversity and similar items)."""
        return False

    def known_items(self) -> np.ndarray:
        """Raw ids of the items it learnt about (the funnel's catalogue includes them all)."""
        return np.empty(0, dtype=object)

    def known_users(self) -> IdMap | None:
        """The ids of the users it learnt about, or None for a source that knows no users."""
        return None

    @property
    def history_length(self) -> int:
        """Recent items per user it reads (0 for none)."""
        return 0

    def user_history(self, users: np.ndarray, recent: list[list[Any]] | None,
                catalogue: Catalogue) -> tuple[sparse.csr_matrix, np.ndarray] | None:
        """The users' seen items and recent items in catalogue indices (see ``Query``), or None
        for a source that knows no users."""
        return None

    def because_of(self, users: np.ndarray, items: list[list[Any]],
                   recent: list[list[Any]] | None) -> list[list[Any]] | None:
        """For each user's listed raw item ids, the history item behind it (or None); None when
        the source cannot say."""
        return None

    def similar(self, item: Any, k: int, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray] | None:
        """(k,) catalogue indices similar to a raw item id and their scores; None when the source
        does not know the item."""
        return None

    def unit_vectors(self) -> np.ndarray:
        """Unit-length item vectors in the source's own item order (``has_vectors`` sources)."""
        raise ConfigError(f"recall source {self.name!r} has no item vectors.")

    def to_catalogue(self, catalogue: Catalogue) -> np.ndarray:
        """Catalogue index of each of the source's own items, in its own order."""
        return np.empty(0, dtype=np.int64)

    def item_stats(self, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
        """(popularity, recency) of every catalogue item in what the source learnt from; zeros
        for a source that learnt from no interactions."""
        return np.zeros(len(catalogue), np.float32), np.zeros(len(catalogue), np.float32)

    def warm(self, catalogue: Catalogue) -> None:
        """Do now what the next request would do first after a catalogue change."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class Recall(RecallStage):
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
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_RECALL_K:
            raise ConfigError(f"recall k must be an integer in [1, {MAX_RECALL_K:,}]; got {k!r}.")
        if retriever.model_ is None or retriever.data_ is None:  # a NotFittedError now, not at the first request
            raise NotFittedError("This Retriever is not fitted yet; call fit(...) or recfunnel.load(path) first.")
        self.retriever, self.k = retriever, int(k)
        self.name = name or retriever.model_name
        self.columns = dict(retriever.columns)
        self._unit: tuple[Any, np.ndarray] | None = None

    def __call__(self, query: Query) -> Candidates:
        return Candidates.of_source(*self.scored(query.users, query.catalogue, query.recent), catalogue=query.catalogue)

    def _data(self) -> Interactions:
        assert self.retriever.data_ is not None  # checked at construction; a fitted Retriever keeps it
        return self.retriever.data_

    def _model(self) -> RetrievalModel:
        assert self.retriever.model_ is not None
        return self.retriever.model_

    @property
    def has_vectors(self) -> bool:
        return bool(self._model().has_vectors)

    def known_items(self) -> np.ndarray:
        return self._data().item_ids.ids.astype(object)

    def known_users(self) -> IdMap:
        return self._data().user_ids

    @property
    def history_length(self) -> int:
        return int(self.retriever.max_history)

    def user_history(self, users: np.ndarray, recent: list[list[Any]] | None,
                catalogue: Catalogue) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Seen items (B, len(catalogue)) and recent items (B, H) in catalogue indices, -1 padded:
        the retriever's training history plus ``recent``, items added after training included."""
        data = self._data()
        index = data.user_ids.index(users)
        hist = self.retriever.user_history(index, recent)
        mapping = self.to_catalogue(catalogue)
        matrix = hist.matrix.tocoo()
        rows, cols = [matrix.row], [mapping[matrix.col]]
        recent_rows = np.where(hist.recent >= 0, mapping[np.maximum(hist.recent, 0)], -1)
        if recent is not None:  # items the retriever never saw (added after training) count too
            lengths = np.array([len(r) for r in recent])
            if lengths.sum():
                raw = np.concatenate([np.asarray(r, dtype=object) for r in recent])
                known = data.item_ids.index(raw) >= 0
                flat = np.where(known, -1, catalogue.index(raw))  # the retriever's history has the rest
                rows.append(np.repeat(np.arange(len(users)), lengths))
                cols.append(flat)
                extra = np.full((len(users), int(lengths.max())), -1, np.int64)
                starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
                extra[rows[-1], np.arange(lengths.sum()) - starts] = flat
                recent_rows = np.concatenate([recent_rows, extra], axis=1)
        row, col = np.concatenate(rows), np.concatenate(cols)
        ok = col >= 0
        seen = sparse.csr_matrix((np.ones(ok.sum(), np.float32), (row[ok], col[ok])),
                                 shape=(len(users), len(catalogue)))
        return seen, recent_rows

    def because_of(self, users: np.ndarray, items: list[list[Any]],
                   recent: list[list[Any]] | None) -> list[list[Any]] | None:
        if getattr(self._model(), "explain", None) is None:
            return None
        return self.retriever.because_of_many(users, items, recent=recent)

    def to_catalogue(self, catalogue: Catalogue) -> np.ndarray:
        """Catalogue index of each of the retriever's item indices (cached per catalogue version)."""
        ids = self._data().item_ids.ids
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

    def similar(self, item: Any, k: int, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray] | None:
        """(k,) catalogue indices of items similar to one raw item id (-1 for none), and their scores."""
        if not self.knows_item(item):
            return None
        lists = self.retriever.similar_items([item], k)
        found = np.where(lists.valid[0], catalogue.index(np.where(lists.valid[0], lists.items[0], 0)), -1)
        return found, lists.scores[0]

    def item_stats(self, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
        """(popularity, recency) of every catalogue item from the retriever's training data:
        interactions, and the time from the item's last interaction to the data's last one (in
        the data's time units; item order when there is no time column). Items the data lacks
        (added later) get 0 and 0: new, and unproven. Cached on the catalogue's version."""

        def compute(state: Any) -> tuple[np.ndarray, np.ndarray]:
            data = self._data()
            mapping = self.to_catalogue(catalogue)
            counts = np.bincount(data.items, minlength=len(mapping)).astype(np.float32)
            times = data.timestamps if data.timestamps is not None else np.arange(len(data), dtype=np.float64)
            last = np.full(len(mapping), -np.inf)
            order = np.lexsort((times, data.items))  # by item, then time: each item's last row ends its run
            ends = np.r_[data.items[order][1:] != data.items[order][:-1], True] if len(order) else np.zeros(0, bool)
            last[data.items[order][ends]] = times[order][ends]
            age = np.where(np.isfinite(last), times.max(initial=0.0) - last, 0.0).astype(np.float32)
            popularity, recency = np.zeros(len(state.ids), np.float32), np.zeros(len(state.ids), np.float32)
            ok = mapping >= 0
            popularity[mapping[ok]], recency[mapping[ok]] = counts[ok], age[ok]
            return popularity, recency

        return catalogue.derived((self, "stats"), compute)

    def knows_item(self, item: Any) -> bool:
        return bool(self._data().item_ids.index([item])[0] >= 0)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k}


class NewItems(RecallStage):
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
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_RECALL_K:
            raise ConfigError(f"new-item recall k must be an integer in [1, {MAX_RECALL_K:,}]; got {k!r}.")
        if isinstance(places, bool) or not isinstance(places, (int, np.integer)) or not 0 <= places <= k:
            raise ConfigError(f"new-item places must be an integer in [0, k={k}]; got {places!r}.")
        self.k, self.column, self.places = int(k), column, int(places)

    def __call__(self, query: Query) -> Candidates:
        return Candidates.of_source(*self.scored(query.history, query.catalogue), catalogue=query.catalogue)

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
