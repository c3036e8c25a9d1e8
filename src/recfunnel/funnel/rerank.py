"""Stock rerankers: drop seen, business filters and boosts, MMR diversity, a cap per group, a limit."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.funnel.candidates import Candidates, Query
from recfunnel.funnel.catalogue import Catalogue

RERANKERS: dict[str, type[Reranker]] = {}


def register(name: str) -> Callable[[type[Reranker]], type[Reranker]]:
    def add(cls: type[Reranker]) -> type[Reranker]:
        cls.name = name
        RERANKERS[name] = cls
        return cls
    return add


class Reranker:
    """A step after ranking: takes candidates in order, returns them filtered or reordered."""

    name = "reranker"

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(query, candidates).")

    def to_dict(self) -> dict[str, Any]:
        """``{"type": name, **constructor arguments}``: enough to rebuild it with ``reranker_from_dict``."""
        params = inspect.signature(type(self).__init__).parameters
        return {"type": self.name, **{p: getattr(self, p) for p in params if p != "self"}}


def reranker_from_dict(spec: dict[str, Any]) -> Reranker:
    """Build a reranker from ``{"type": "mmr", "diversity": 0.3}`` (a config entry)."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in RERANKERS:
        raise ConfigError(f"unknown reranker {kind!r}{did_you_mean(str(kind), list(RERANKERS))}; "
                          f"valid: {', '.join(RERANKERS)}.")
    cls = RERANKERS[kind]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in spec:
        if key not in valid:
            raise ConfigError(f"unknown option {key!r} for reranker {kind!r}{did_you_mean(key, valid)}; "
                              f"valid: {', '.join(valid) or '(none)'}.")
    return cls(**spec)


def _compact(candidates: Candidates, drop: np.ndarray) -> Candidates:
    """Empty the dropped places and move them to the end, keeping the order of the rest."""
    masked = candidates.mask(drop)
    return masked.take(np.argsort(~masked.valid, axis=1, kind="stable"))


def lookup(matrix: sparse.csr_matrix, items: np.ndarray) -> np.ndarray:
    """(B, N) bool: ``matrix[b, items[b, n]] != 0`` (False at empty places), one vectorised gather."""
    rows = np.repeat(np.arange(items.shape[0]), items.shape[1])
    found = np.asarray(matrix[rows, np.maximum(items, 0).ravel()]).reshape(items.shape) != 0
    return found & (items >= 0)


@register("drop_seen")
class DropSeen(Reranker):
    """Drop items the user already interacted with (training history and live events)."""

    def __init__(self) -> None:
        pass

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        if query.seen is None:
            return candidates
        return _compact(candidates, lookup(query.seen, candidates.items))


@register("filter")
class Filter(Reranker):
    """Business filters on item attributes.

    Args:
        include: Keep only items whose ``column`` value is one of these.
        exclude: Drop items whose ``column`` value is one of these.
        column: The attribute ``include``/``exclude`` read (e.g. "category", "brand").
        available: A boolean attribute; items where it is false are dropped (ignored if absent).
        min_price, max_price: Keep items whose ``price_column`` lies in the range.
        price_column: The price attribute.
    """

    def __init__(self, *, include: list[Any] | None = None, exclude: list[Any] | None = None,
                 column: str = "category", available: str | None = "available",
                 min_price: float | None = None, max_price: float | None = None,
                 price_column: str = "price") -> None:
        self.include, self.exclude, self.column = include, exclude, column
        self.available, self.min_price, self.max_price, self.price_column = available, min_price, max_price, price_column

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        return _compact(candidates, ~self.allowed(query.catalogue)[np.maximum(candidates.items, 0)])

    def allowed(self, catalogue: Catalogue) -> np.ndarray:
        """(len(catalogue),) True for the items this filter lets through."""
        keep = np.ones(len(catalogue), bool)
        if self.include is not None or self.exclude is not None:
            values = _attribute(catalogue, self.column, "filter").astype(str)
            if self.include is not None:
                keep &= np.isin(values, [str(v) for v in self.include])
            if self.exclude is not None:
                keep &= ~np.isin(values, [str(v) for v in self.exclude])
        if self.available and catalogue.has(self.available):
            keep &= _truthy(catalogue.column(self.available))
        if self.min_price is not None or self.max_price is not None:
            price = pd.to_numeric(pd.Series(_attribute(catalogue, self.price_column, "filter")),
                                  errors="coerce").to_numpy(np.float64)  # unparsable prices drop out (NaN)
            keep &= (price >= (self.min_price if self.min_price is not None else -np.inf)) & \
                    (price <= (self.max_price if self.max_price is not None else np.inf))
        return keep


@register("boost")
class Boost(Reranker):
    """Multiply the score of items whose ``column`` value is in ``values`` by ``factor``, then re-sort.

    Args:
        values: Attribute values to promote (or demote, with factor < 1).
        factor: Score multiplier.
        column: The attribute to match (use the item id column to boost single items).
    """

    def __init__(self, *, values: list[Any], factor: float = 1.5, column: str = "category") -> None:
        self.values, self.factor, self.column = list(values), float(factor), column

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        values = _attribute(query.catalogue, self.column, "boost").astype(str)
        hit = np.isin(values, [str(v) for v in self.values])[np.maximum(candidates.items, 0)]
        return candidates.with_scores(np.where(hit, candidates.scores * self.factor, candidates.scores)).sorted()


@register("mmr")
class MMR(Reranker):
    """Maximal marginal relevance (Carbonell and Goldstein, 1998): pick the next item maximising
    ``(1 - diversity) * relevance - diversity * max similarity to the items already picked``.

    Relevance is the score scaled to [0, 1] per list. Similarity is 1 for two items of the same
    ``column`` value (``by="category"``) or the cosine of their vectors (``by="embedding"``, the
    funnel's item vectors). The first ``k`` places are reordered (default: the requested length);
    the rest follow in their previous order. Vectorised over users; k steps in all.
    """

    def __init__(self, *, diversity: float = 0.3, by: str = "category", column: str = "category",
                 k: int | None = None) -> None:
        if not 0.0 <= diversity <= 1.0:
            raise ConfigError(f"MMR diversity must be in [0, 1]; got {diversity!r}.")
        if by not in ("category", "embedding"):
            raise ConfigError(f"MMR by={by!r} is not valid; expected 'category' or 'embedding'.")
        self.diversity, self.by, self.column, self.k = float(diversity), by, column, k

    def _similarity(self, query: Query, items: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        rows = np.arange(len(items))
        if self.by == "embedding" and query.vectors is not None:
            vectors = query.vectors[np.maximum(items, 0)]  # (B, N, D)
            return lambda pick: np.einsum("bnd,bd->bn", vectors, vectors[rows, pick])
        codes = query.catalogue.codes(_check_column(query.catalogue, self.column, "MMR"))
        group = np.where(items >= 0, codes[np.maximum(items, 0)], -1)  # (B, N); -1: missing, like nothing
        return lambda pick: ((group == group[rows, pick][:, None]) & (group >= 0)).astype(np.float32)

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        valid, width = candidates.valid, candidates.items.shape[1]
        steps = min(self.k or query.k, width)
        if steps <= 1 or self.diversity == 0.0:
            return candidates
        score = np.where(valid, candidates.scores, np.nan)
        low, high = np.nanmin(np.where(valid.any(1, keepdims=True), score, 0), 1, keepdims=True), \
            np.nanmax(np.where(valid.any(1, keepdims=True), score, 0), 1, keepdims=True)
        relevance = (np.nan_to_num(score, nan=0.0) - low) / np.maximum(high - low, 1e-12)
        similar = self._similarity(query, candidates.items)
        rows = np.arange(len(valid))
        closest = np.zeros(valid.shape, np.float32)
        free = np.ones(valid.shape, bool)
        order = np.empty((len(valid), steps), np.int64)
        for step in range(steps):  # k greedy steps, each vectorised over users and candidates
            value = (1.0 - self.diversity) * relevance - self.diversity * closest
            value = np.where(free & valid, value, np.where(free, -1e9, -np.inf))
            pick = value.argmax(1)
            order[:, step] = pick
            free[rows, pick] = False
            closest = np.maximum(closest, similar(pick))
        rest = np.argsort(~free, axis=1, kind="stable")[:, : width - steps]  # unpicked, in order
        return candidates.take(np.concatenate([order, rest], axis=1))


@register("max_per_group")
class MaxPerGroup(Reranker):
    """At most ``n`` items per ``column`` value (category, brand) before any group gets more.

    The list is dealt in rounds: every group's first ``n`` items in list order, then every
    group's next ``n``, and so on, so the top of the list is capped and the list still fills to
    the requested length when the candidates allow (a 3-per-genre cap over 18 genres would
    otherwise end a list at 54). ``strict=True`` drops the items over the cap instead.
    """

    def __init__(self, *, n: int = 2, column: str = "category", strict: bool = False) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"max_per_group n must be a positive integer; got {n!r}.")
        if not isinstance(strict, bool):
            raise ConfigError(f"max_per_group strict must be true or false; got {strict!r}.")
        self.n, self.column, self.strict = n, column, strict

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        codes = query.catalogue.codes(_check_column(query.catalogue, self.column, "max_per_group"))
        group = np.where(candidates.valid, codes[np.maximum(candidates.items, 0)], -1)  # (B, N)
        rows, width = group.shape
        key = (np.arange(rows)[:, None] * (int(codes.max(initial=0)) + 2) + group + 1).ravel()
        order = np.argsort(key, kind="stable")  # places of one (user, group) together, in list order
        starts = np.r_[0, np.flatnonzero(np.diff(key[order])) + 1]
        rank = np.arange(key.size) - np.repeat(starts, np.diff(np.r_[starts, key.size]))
        seat = np.empty(key.size, np.int64)
        seat[order] = rank
        place = seat.reshape(rows, width)  # the item's place within its (user, group), from 0
        if self.strict:
            return _compact(candidates, (place >= self.n) & (group >= 0))
        round_ = np.where(group >= 0, place // self.n, width)  # empty places after every round
        return candidates.take(np.argsort(round_ * width + np.arange(width), axis=1, kind="stable"))


@register("limit")
class Limit(Reranker):
    """Cut every list to ``n`` items."""

    def __init__(self, *, n: int = 10) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"limit n must be a positive integer; got {n!r}.")
        self.n = n

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        return candidates.head(self.n)


def _check_column(catalogue: Catalogue, column: str, who: str) -> str:
    if not catalogue.has(column):
        raise ConfigError(f"{who} reads item attribute {column!r}, which the catalogue does not have; "
                          f"attributes: {', '.join(map(str, catalogue.table.columns))}.")
    return column


def _attribute(catalogue: Catalogue, column: str, who: str) -> np.ndarray:
    return catalogue.column(_check_column(catalogue, column, who))


def _truthy(values: np.ndarray) -> np.ndarray:
    text = np.char.lower(values.astype(str))
    return ~np.isin(text, ["false", "0", "no", "none", "nan", ""])
