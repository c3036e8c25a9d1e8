"""The currency between funnel stages: a ``Query`` every stage reads and the ``Candidates`` they pass on.

Stage protocols: a recall source is ``(query) -> Candidates``; the rank stage and each reranker
are ``(query, candidates) -> Candidates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse

from recfunnel.errors import ConfigError
from recfunnel.funnel.catalogue import Catalogue

#: The longest list a funnel returns or evaluates in one request.
MAX_K = 1000


def positions(lists: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(B, N) place of each of ``items`` (B, N) in the same row of ``lists`` (B, K), -1 where absent.

    One sort of (row, item) keys and one binary search; no loop over users.
    """
    rows, width = lists.shape
    if width == 0 or items.shape[1] == 0:
        return np.full(items.shape, -1, np.int64)
    span = int(max(lists.max(initial=0), items.max(initial=0))) + 2
    keys = np.where(lists >= 0, np.arange(rows)[:, None] * span + lists + 1, -1).ravel()
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    query = (np.arange(rows)[:, None] * span + items + 1).ravel()
    at = np.minimum(np.searchsorted(ordered, query), ordered.size - 1)
    hit = (ordered[at] == query) & (items.ravel() >= 0)
    return np.where(hit, order[at] % width, -1).reshape(items.shape)


@dataclass
class Query:
    """B requests as every stage sees them: who asks, for how many, and what is known of them.

    Attributes:
        users: (B,) raw user ids.
        k: The list length asked for.
        catalogue: The items, their attributes and raw ids (``catalogue.ids[index]``).
        seen: (B, len(catalogue)) CSR of each user's items: training and live events.
        history: (B, H) catalogue indices of each user's recent items, oldest first, -1 padded.
        recent: Raw item ids each user took since training (live events), or None.
        context: The request's context values (e.g. ``{"hour": 9}``), or None.
        vectors: (len(catalogue), D) unit-length item vectors for diversity, or None.
    """

    users: np.ndarray
    k: int
    catalogue: Catalogue
    seen: sparse.csr_matrix
    history: np.ndarray
    recent: list[list[Any]] | None = None
    context: dict[str, Any] | None = None
    vectors: np.ndarray | None = None


@dataclass
class Candidates:
    """Candidate lists for B users, N places each: raw item ids (``item_ids``) kept as catalogue
    positions (``items``), the funnel's codes, through which every stage gathers table rows.

    Attributes:
        items: (B, N) int64 catalogue positions, -1 for an empty place.
        scores: (B, N) float32 current scores (recall score, then ranker probability), -inf for none.
        sources: (B, N) int64 bit mask of the recall sources that proposed the item.
        recall_scores: (B, N) float32 reciprocal-rank fusion of the recall sources' lists.
        lists: Each recall source's own (B, K_s) list that ``merge`` united (``ranks`` reads them).
        features: (B, N) arrays of what the recall stage knew about each candidate (each
            source's rank and score of it, ...; see ``recfunnel.funnel.features``), for the ranker.
        objectives: (B, N) probability of each objective a multi-task ranker predicted and fused
            into ``scores`` (empty before ranking, or for a ranker of one label).

    Example:
        >>> c = Candidates.merge([np.array([[3, 1]]), np.array([[1, 2]])])
        >>> c.items.tolist(), c.sources.tolist(), c.ranks.tolist()  # item 1: 2nd of source 0, 1st of source 1
        ([[1, 3, 2]], [[3, 1, 2]], [[[2, 1], [1, 0], [0, 2]]])
    """

    items: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    recall_scores: np.ndarray
    lists: tuple[np.ndarray, ...] = ()
    features: dict[str, np.ndarray] = field(default_factory=dict)
    objectives: dict[str, np.ndarray] = field(default_factory=dict)
    catalogue: Catalogue | None = field(default=None, repr=False, compare=False)

    @property
    def valid(self) -> np.ndarray:
        """(B, N) True where a place holds an item."""
        return self.items >= 0

    @property
    def ranks(self) -> np.ndarray:
        """(B, N, S) each recall source's rank of each item in its own list (1 = its first), 0
        where the source did not propose it; computed when asked (no request pays for it unless
        a stage reads it)."""
        return np.stack([positions(found, self.items) + 1 for found in self.lists], axis=2) if self.lists \
            else np.zeros((*self.items.shape, 0), np.int64)

    @property
    def item_ids(self) -> np.ndarray:
        """(B, N) raw item ids (object), None at empty places."""
        if self.catalogue is None:
            raise ConfigError("these Candidates were made without a catalogue; build them with "
                              "Candidates.from_ids(..., catalogue) or of_source(..., catalogue=...).")
        return self.ids(self.catalogue)

    def ids(self, catalogue: Catalogue) -> np.ndarray:
        """(B, N) raw item ids (object) of ``catalogue``, None at empty places."""
        out = catalogue.ids[np.maximum(self.items, 0)].astype(object)
        out[~self.valid] = None
        return out

    @staticmethod
    def of_source(items: np.ndarray, scores: np.ndarray, *, catalogue: Catalogue | None = None) -> Candidates:
        """One recall source's ranked (B, K) list of catalogue positions and its own scores (source bit 0)."""
        valid = items >= 0
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        return Candidates(items, scores, valid.astype(np.int64), scores.copy(), catalogue=catalogue)

    @staticmethod
    def from_ids(item_ids: np.ndarray, scores: np.ndarray, catalogue: Catalogue) -> Candidates:
        """One source's ranked (B, K) list of raw item ids (None, or an id the catalogue lacks:
        an empty place) and its scores, for a stage that thinks in raw ids.

        Example:
            >>> import pandas as pd
            >>> catalogue = Catalogue(pd.DataFrame({"item_id": ["a", "b", "c"]}))
            >>> Candidates.from_ids(np.array([["c", "zz"]], dtype=object), np.ones((1, 2)), catalogue).item_ids
            array([['c', None]], dtype=object)
        """
        ids = np.asarray(item_ids, dtype=object)
        return Candidates.of_source(catalogue.index(ids.ravel()).reshape(ids.shape), scores, catalogue=catalogue)

    @staticmethod
    def merge(items: list[np.ndarray], *, fusion_k: float = 60.0, fused: list[bool] | None = None,
              catalogue: Catalogue | None = None) -> Candidates:
        """Union of several sources' ranked (B, K_s) lists, de-duplicated per user, sources kept as bits.

        Sources score on different scales (counts, cosines), so the merged score is reciprocal-rank
        fusion, Σ_s 1 / (fusion_k + rank_s), and rows come out in that order. Vectorised: one sort
        over (user, item) keys, no loop over users. ``fused[s]`` False keeps source ``s`` out of
        the fusion score (a backfill list: its items come after every fused one).
        """
        stacked = np.concatenate(items, axis=1)  # (B, ΣK)
        weight = fused if fused is not None else [True] * len(items)
        score = np.concatenate([np.broadcast_to(float(w) / (fusion_k + 1 + np.arange(part.shape[1])), part.shape)
                                for part, w in zip(items, weight, strict=True)], axis=1).astype(np.float32)
        bits = np.concatenate([np.full(part.shape, 1 << s, np.int64) for s, part in enumerate(items)], axis=1)
        rows, width = stacked.shape
        span = int(stacked.max(initial=0)) + 2
        keys = np.arange(rows)[:, None] * span + (stacked + 1)  # (B, ΣK), equal for duplicates in a row
        flat, order = keys.ravel(), np.argsort(keys.ravel(), kind="stable")
        first = np.ones(flat.size, bool)
        first[1:] = flat[order][1:] != flat[order][:-1]
        group = np.cumsum(first) - 1  # the (user, item) group of each sorted place
        merged_bits = np.zeros(group[-1] + 1 if flat.size else 0, np.int64)
        np.bitwise_or.at(merged_bits, group, bits.ravel()[order])
        best = np.zeros(merged_bits.size, np.float32)
        np.add.at(best, group, score.ravel()[order])
        keep = np.zeros(flat.size, bool)
        keep[order[first]] = True  # the first place of each group (stable sort keeps source order)
        keep &= stacked.ravel() >= 0
        slot_group = np.empty(flat.size, np.int64)
        slot_group[order] = group
        keep = keep.reshape(rows, width)
        # pack kept places to the left of each row, in their original order
        position = np.where(keep, np.cumsum(keep, axis=1) - 1, width)
        size = int(keep.sum(1).max(initial=0))
        out_items = np.full((rows, size + 1), -1, np.int64)
        out_bits = np.zeros((rows, size + 1), np.int64)
        out_scores = np.full((rows, size + 1), -np.inf, np.float32)
        row_index = np.broadcast_to(np.arange(rows)[:, None], keep.shape)
        column = np.minimum(position, size)
        out_items[row_index, column] = np.where(keep, stacked, -1)
        groups = slot_group.reshape(rows, width)
        out_bits[row_index, column] = np.where(keep, merged_bits[groups], 0)
        out_scores[row_index, column] = np.where(keep, best[groups], -np.inf)
        out_items, out_bits, out_scores = out_items[:, :size], out_bits[:, :size], out_scores[:, :size]
        return Candidates(out_items, out_scores.copy(), out_bits, out_scores, lists=tuple(items),
                          catalogue=catalogue).sorted()

    def mask(self, drop: np.ndarray) -> Candidates:
        """The same lists with the places where ``drop`` (B, N) is True emptied."""
        drop = drop & self.valid
        return replace(self, items=np.where(drop, -1, self.items), scores=np.where(drop, -np.inf, self.scores))

    def take(self, order: np.ndarray) -> Candidates:
        """Reorder each row by ``order`` (B, M) column indices (M may be < N to cut)."""
        rows = np.arange(len(self.items))[:, None]
        return Candidates(self.items[rows, order], self.scores[rows, order], self.sources[rows, order],
                          self.recall_scores[rows, order], self.lists,
                          {k: v[rows, order] for k, v in self.features.items()},
                          {k: v[rows, order] for k, v in self.objectives.items()}, self.catalogue)

    def sorted(self) -> Candidates:
        """Each row by descending score, empty places last."""
        return self.take(np.argsort(-self.scores, axis=1, kind="stable"))

    def head(self, k: int) -> Candidates:
        """The first ``k`` places of each row."""
        return self.take(np.broadcast_to(np.arange(min(k, self.items.shape[1])), (len(self.items),
                                                                              min(k, self.items.shape[1]))))

    def with_scores(self, scores: np.ndarray) -> Candidates:
        """New scores for the same places (empty places stay -inf)."""
        return replace(self, scores=np.where(self.valid, scores, -np.inf).astype(np.float32))
