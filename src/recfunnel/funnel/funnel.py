"""Funnel: recall sources -> one ranker -> rerankers, for one request or for many users at once."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recfunnel.data.checks import check_k, plain
from recfunnel.data.interactions import IdMap
from recfunnel.errors import ConfigError, RecfunnelError
from recfunnel.estimators.artifact import inconsistent
from recfunnel.estimators.loading import register_loader
from recfunnel.estimators.results import Recommendation, Recommendations
from recfunnel.funnel.candidates import MAX_K, Candidates, Query
from recfunnel.funnel.catalogue import Catalogue
from recfunnel.funnel.evaluate import evaluate_funnel
from recfunnel.funnel.features import candidate_features, feature_names
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import RecallStage
from recfunnel.funnel.rerank import Filter, Reranker, lookup, reranker_from_dict
from recfunnel.funnel.storage import read_funnel, save_funnel

BACKFILL = "backfill"  # the source name of items a request's filters pulled in when recall fell short


@dataclass
class Stages:
    """Every stage's lists for one batch of users: (B, K) catalogue indices (-1 for none), and the
    final candidates with their scores and recall sources."""

    sources: list[np.ndarray]
    merged: np.ndarray
    ranked: np.ndarray
    final: Candidates
    history: np.ndarray  # (B, H) catalogue indices of recent items, oldest first, -1 padded
    reranked: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (reranker, (B, k)) after each step
    lifts: np.ndarray | None = None  # (B, k, T) what each objective added to a final item's fused score


class Funnel:
    """Several recall sources, one ranker, a chain of rerankers, over one item catalogue.

    Args:
        recall: Recall sources in priority order (``Recall(retriever, k=...)``, ``NewItems()``).
        rank: A fitted scorer (a Ranker, GBDT+LR, FTRL, ...) or a ``Rank`` stage; None keeps the
            recall order.
        rerank: Rerankers applied in order after ranking.
        items: Item table (id column + attributes such as title, category, price); items the
            retrievers know but the table lacks are added with empty attributes.
        users: User table with the ranker's user features (optional).

    Example:
        >>> from recfunnel.datasets import make_shop
        >>> from recfunnel.estimators.retriever import Retriever
        >>> from recfunnel.funnel.recall import Recall
        >>> shop = make_shop(num_users=30, num_items=40, num_impressions=3000, seed=1)
        >>> pop = Retriever("popularity").fit(shop.interactions)
        >>> funnel = Funnel([Recall(pop, k=20)], items=shop.items)
        >>> len(funnel.recommend("u1", k=5).item_ids)
        5
    """

    def __init__(self, recall: Sequence[RecallStage], rank: Any = None,
                 rerank: Sequence[Reranker] = (), *, items: pd.DataFrame | None = None,
                 users: pd.DataFrame | None = None) -> None:
        if not all(isinstance(s, RecallStage) for s in recall):
            odd = next(type(s).__name__ for s in recall if not isinstance(s, RecallStage))
            raise ConfigError(f"recall sources must be RecallStages (Recall(retriever), NewItems(), or a subclass); "
                              f"got a {odd}.")
        learnt = [s for s in recall if s.columns is not None]  # sources that learnt from interactions
        if not learnt:
            raise ConfigError("a Funnel needs at least one Recall(retriever) source to know users and items.")
        names = [s.name for s in recall]
        if BACKFILL in names:
            raise ConfigError(f"{BACKFILL!r} names the items a request's filters pull in; name the recall source "
                              "something else.")
        if len(set(names)) != len(names):
            raise ConfigError(f"recall source names must be distinct; got {names}. Pass Recall(..., name=...).")
        if len(recall) > 61:
            raise ConfigError(f"at most 61 recall sources; got {len(recall)}.")
        columns = learnt[0].columns
        if not isinstance(columns, dict) or not {"user_col", "item_col"} <= set(columns):
            raise ConfigError(f"recall source {learnt[0].name!r}: columns must name user_col and item_col; "
                              f"got {columns!r}.")
        self.user_key, self.item_key = str(columns["user_col"]), str(columns["item_col"])
        self.recall, self.rerank = list(recall), list(rerank)
        self._base = learnt[0]  # the users' history, and the popularity of backfill and candidate features
        self.catalogue = _catalogue(items, learnt, self.item_key)
        self.users = users
        self.rank = rank if rank is None or isinstance(rank, Rank) else \
            Rank(rank, users=users, user_key=self.user_key, item_key=self.item_key)
        unknown = sorted(set(self.rank.candidate_features) - set(feature_names(self.recall))) if self.rank else []
        if unknown:  # e.g. a recall source renamed or dropped after the ranker was trained on it
            raise ConfigError(f"the ranker reads candidate features {unknown[:4]} that these recall sources "
                              f"({', '.join(names)}) do not provide; rank with the sources it was trained with.")

    # -- one request ----------------------------------------------------------------------------
    def recommend(self, user: Any, k: int = 10, *, context: dict[str, Any] | None = None,
                  recent: list[Any] | None = None, filters: dict[str, Any] | None = None,
                  explain: bool = True) -> Recommendation:
        """The final list for one raw user id (unknown users get the cold-start path).

        Args:
            user: Raw user id.
            k: List length.
            context: Context feature values for the ranker (e.g. ``{"hour": 9}``).
            recent: Raw item ids the user interacted with since training, oldest first.
            filters: ``Filter`` options for this request (include/exclude/min_price/max_price).
            explain: Add reasons (recall sources, "because you viewed", ranker features).
        """
        return self.recommend_many([user], k, context=context, recent=None if recent is None else [recent],
                                   filters=filters, explain=explain)[0]

    def recommend_many(self, users: Sequence[Any], k: int = 10, *, context: dict[str, Any] | None = None,
                       recent: Sequence[Sequence[Any] | None] | None = None, filters: dict[str, Any] | None = None,
                       explain: bool = True) -> Recommendations:
        """``recommend`` for several users sharing k, context and filters, in one vectorised pass
        (a server batches concurrent requests through this)."""
        check_k(k, limit=MAX_K)
        keys = np.empty(len(users), dtype=object)
        keys[:] = list(users)
        histories = None if recent is None else [list(r) if r is not None else [] for r in recent]
        stages = self.run(keys, k, recent=histories, context=context, filters=filters)
        final = stages.final
        out = [self._describe(user, final.items[row][final.valid[row]], final.scores[row][final.valid[row]],
                              final.sources[row][final.valid[row]]) for row, user in enumerate(keys)]
        for row, result in enumerate(out):
            result.shortfall = k - len(result.item_ids)
            ok = final.valid[row]
            if final.objectives and self.rank is not None and self.rank.fuse is not None:
                values = {label: final.objectives[label][row][ok] for label in self.rank.labels}
                result.objectives = [{label: float(v[i]) for label, v in values.items()} for i in range(ok.sum())]
        if explain:
            self._explain(keys, stages, out, context, histories)
        return Recommendations(out, width=k)

    def run(self, users: np.ndarray, k: int, *, recent: list[list[Any]] | None = None,
            context: dict[str, Any] | None = None, filters: dict[str, Any] | None = None,
            exclude: sparse.csr_matrix | None = None) -> Stages:
        """Every stage for (B,) raw users; returns the intermediate lists (see ``Stages``).

        With ``filters``, users whose candidates pass them fewer than ``k`` times get the most
        popular items that pass as more candidates (source "backfill"), ranked with the rest.
        """
        request = reranker_from_dict({"type": "filter", **filters}) if filters else None
        allowed = request.allowed(self.catalogue) if isinstance(request, Filter) else None
        query = self.query(users, k, recent=recent, context=context)
        lists, merged = self.recall_stage(query, exclude=exclude, allowed=allowed)
        ranked = self.rank(query, merged) if self.rank is not None and merged.items.shape[1] else merged
        final, steps = ranked, []
        for step in ([request] if request is not None else []) + self.rerank:
            final = _checked(step(query, final), f"reranker {step.name!r}", len(users))
            steps.append((step.name, final.items[:, :k]))
        final = self._new_item_places(final, k).head(k)
        lifts = self._lifts(ranked, final)
        return Stages([c.items for c in lists], merged.items, ranked.items, final, query.history, steps, lifts)

    def _lifts(self, ranked: Candidates, final: Candidates) -> np.ndarray | None:
        """(B, k, T) how far each objective lifted each final item's fused score above the user's
        average ranked candidate (see ``Rank.lifts``); None without a fused ranker."""
        if self.rank is None or self.rank.fuse is None or set(final.objectives) != set(self.rank.labels):
            return None
        return self.rank.lifts(final.objectives, ranked.objectives, ranked.valid)

    def query(self, users: np.ndarray, k: int, *, recent: list[list[Any]] | None = None,
              context: dict[str, Any] | None = None) -> Query:
        """The Query every stage reads for (B,) raw users: their seen and recent items (training
        history plus ``recent``), the context and the catalogue's item vectors."""
        seen, history = self.user_history(users, recent)
        return Query(users, k, self.catalogue, seen, history, recent, context, self.item_vectors())

    def _new_item_places(self, candidates: Candidates, k: int) -> Candidates:
        """Give items added since training ``NewItems.places`` of the first ``k`` (the last ones),
        taking the best such items the rerankers kept: a ranker trained before they existed scores
        them without a track record, so without a reserved place fresh stock would never be shown."""
        places = min(max((s.places for s in self.recall), default=0), k)
        fresh = (candidates.items >= self.catalogue.num_trained) & candidates.valid
        if places == 0 or not fresh.any():
            return candidates
        width = candidates.items.shape[1]
        chosen = fresh & (np.cumsum(fresh, axis=1) <= places)  # the best `places` new items of each list
        top = np.arange(width) < k
        need = (chosen & ~top).sum(1, keepdims=True)  # chosen ones below the first k
        moved = chosen & ~top
        key = np.where(moved, k - need + np.cumsum(moved, axis=1) - 1 - 0.5, np.arange(width, dtype=np.float64))
        return candidates.take(np.argsort(key, axis=1, kind="stable"))

    def recall_stage(self, query: Query, *, exclude: sparse.csr_matrix | None = None,
                     allowed: np.ndarray | None = None) -> tuple[list[Candidates], Candidates]:
        """Every recall source's Candidates and their merge (less ``exclude``; with ``allowed``
        items, backfilled to ``query.k`` that pass), with the candidate features the ranker reads."""
        lists = [_checked(source(query), f"recall source {source.name!r}", len(query.users)) for source in self.recall]
        found = [c.items for c in lists]
        merged = Candidates.merge(found, catalogue=query.catalogue)
        filler = self._backfill(merged, allowed, query.seen, query.k) if allowed is not None else None
        if filler is not None:
            merged = Candidates.merge([*found, filler], fused=[True] * len(found) + [False], catalogue=query.catalogue)
        if exclude is not None:
            merged = merged.mask(lookup(exclude, merged.items)).sorted()
        if self.rank is not None and self.rank.candidate_features:
            merged.features = self.candidate_features(lists, merged, query.seen)
        return lists, merged

    def _backfill(self, merged: Candidates, allowed: np.ndarray, seen: sparse.csr_matrix, k: int) -> np.ndarray | None:
        """(B, W) the most popular unseen items that ``allowed`` lets through, for the users whose
        candidates pass it fewer than ``k`` times (-1 elsewhere); None when no user is short."""
        short = (allowed[np.maximum(merged.items, 0)] & merged.valid).sum(1) < k
        pool = np.flatnonzero(allowed)
        if not short.any() or pool.size == 0:
            return None
        popular = pool[np.argsort(-self._base.item_stats(self.catalogue)[0][pool], kind="stable")]
        width = min(popular.size, k + int(np.diff(seen.indptr).max(initial=0)))  # k unseen ones at least
        filler = np.broadcast_to(popular[:width], (len(short), width)).copy()
        filler[lookup(seen, filler) | ~short[:, None]] = -1
        return filler

    def candidate_features(self, lists: list[Candidates], candidates: Candidates,
                           seen: sparse.csr_matrix) -> dict[str, np.ndarray]:
        """What the recall stage knew about each of ``candidates`` (see ``recfunnel.funnel.features``)."""
        return candidate_features(self.recall, [(c.items, c.scores) for c in lists], candidates, self.catalogue,
                                  seen, self._base.item_stats(self.catalogue))

    def user_history(self, users: np.ndarray, recent: list[list[Any]] | None) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Seen items (B, len(catalogue)) CSR and recent items (B, H) in catalogue indices, -1
        padded, oldest first, of (B,) raw users: their training history plus ``recent``."""
        found = self._base.user_history(users, recent, self.catalogue)
        if found is None:
            raise ConfigError(f"recall source {self._base.name!r} names id columns but gives no user_history; a "
                              "source that learnt from interactions must say what each user took.")
        return found

    def known_users(self) -> IdMap:
        """The ids of the users the funnel has a training history for (``.ids``, ``.index(raw ids)``)."""
        found = self._base.known_users()
        if found is None:
            raise ConfigError(f"recall source {self._base.name!r} names id columns but gives no known_users.")
        return found

    @property
    def history_length(self) -> int:
        """The longest recent history any stage reads: the recall sources' and the ranker's
        Sequence features over the item vocabulary (a server reads no more events than this)."""
        lengths = [s.history_length for s in self.recall if s.history_length]
        if self.rank is not None:
            lengths += self.rank.history_lengths()
        return max(lengths, default=50)

    def item_vectors(self) -> np.ndarray | None:
        """Unit-length item vectors (num_items, D) from the first recall model that has them."""
        catalogue = self.catalogue
        source = next((s for s in self.recall if s.has_vectors), None)
        if source is None:
            return None

        def build(state: Any) -> np.ndarray:
            own = source.unit_vectors()
            vectors = np.zeros((len(state.ids), own.shape[1]), np.float32)
            mapping = source.to_catalogue(catalogue)
            vectors[mapping[mapping >= 0]] = own[mapping >= 0]
            return vectors

        return catalogue.derived((source, "vectors"), build)

    def _describe(self, user: Any, items: np.ndarray, scores: np.ndarray, bits: np.ndarray) -> Recommendation:
        catalogue = self.catalogue
        names = [s.name for s in self.recall] + [BACKFILL]
        sources = [[name for j, name in enumerate(names) if b >> j & 1] for b in bits]
        return Recommendation(user, [plain(v) for v in catalogue.ids[items]], [float(s) for s in scores], sources,
                              attributes=catalogue.records(items, [c for c in catalogue.table.columns
                                                                   if c != self.item_key]))

    def _explain(self, users: np.ndarray, stages: Stages, out: list[Recommendation],
                 context: dict[str, Any] | None, recent: list[list[Any]] | None) -> None:
        """Reasons for every listed item: its recall sources, the history item behind an ItemCF
        candidate, and the item features that raised its ranker score (batched over users)."""
        for result in out:
            result.reasons = [[f"from {name}" for name in names] for names in result.sources]
        for source in self.recall:
            mine = [[i for i, names in enumerate(r.sources) if source.name in names] for r in out]
            asked = [[r.item_ids[i] for i in places] for r, places in zip(out, mine, strict=True)]
            behind = source.because_of(users, asked, recent)
            if behind is None:
                continue
            for result, places, items in zip(out, mine, behind, strict=True):
                for i, item in zip(places, items, strict=True):
                    if item is not None:
                        result.reasons[i].append(f"because you viewed {self._title(item)}")
        if self.rank is not None:
            effects = self.rank.explain(users, stages.final.items, self.catalogue, context, stages.history,
                                        stages.final.features or None)
            for result, features in zip(out, effects, strict=True):
                result.features = features
                for reasons, found in zip(result.reasons, features, strict=True):
                    reasons += [_feature_reason(e, self.item_key) for e in found if e["value"] is not None]
        if stages.lifts is not None and self.rank is not None:
            for row, result in enumerate(out):
                lifts = stages.lifts[row][stages.final.valid[row]]
                for reasons, lift, scores in zip(result.reasons, lifts, result.objectives, strict=True):
                    reasons += _objective_reason(self.rank.labels, lift, scores, self.rank.mode)

    def _title(self, item: Any) -> str:
        row = self.catalogue.index([item])[0]
        if row >= 0 and self.catalogue.has("title"):
            title = self.catalogue.table["title"].iloc[row]
            if isinstance(title, str) and title:
                return title
        return str(item)

    def evaluate(self, test: pd.DataFrame, *, k: int = 10, exclude: pd.DataFrame | None = None,
                 truth: Any = None) -> dict[str, Any]:
        """Offline metrics of every stage on held-out interactions (see ``evaluate_funnel``)."""
        return evaluate_funnel(self, test, k=k, exclude=exclude, truth=truth)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one artifact directory: each stage's artifact, the item and user tables, a config."""
        return save_funnel(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Funnel:
        """Read a funnel written by ``save`` (``recfunnel.load`` does the same for any artifact)."""
        parts = read_funnel(path)
        added = parts.pop("added")
        with inconsistent(path, kind="funnel artifact", also=(RecfunnelError,)):
            funnel = cls(**parts)
            if len(added):
                funnel.add_items(added)  # items added after training stay "new"
        return funnel

    # -- catalogue ------------------------------------------------------------------------------
    def add_items(self, rows: pd.DataFrame) -> tuple[int, int]:
        """Add or update items (id column + attributes); new ones can be recommended at once
        through ``NewItems`` recall and are ranked from their attributes. Returns (added, updated)."""
        return self.catalogue.upsert(rows)

    def copy(self) -> Funnel:
        """The same stages over a catalogue of its own: items added to the copy leave this funnel
        as it was (a server adds items to a copy and swaps it in, so no request waits for them)."""
        twin = copy.copy(self)
        twin.catalogue = self.catalogue.copy()
        return twin

    def warm(self) -> None:
        """Do now what the next request would do first after a catalogue change: map, encode and
        vectorise the items for every stage."""
        for source in self.recall:
            source.warm(self.catalogue)
        if self.rank is not None:
            self.rank.warm(self.catalogue)
        self.item_vectors()

    def similar(self, item: Any, k: int = 10) -> list[Any]:
        """Raw ids of items similar to ``item``, from the first recall source that knows it."""
        return self.similar_scored(item, k)[0]

    def similar_scored(self, item: Any, k: int = 10) -> tuple[list[Any], list[float]]:
        """``similar`` with the recall source's similarity score of each item."""
        check_k(k, limit=MAX_K)
        for source in self.recall:
            similar = source.similar(item, k, self.catalogue)
            if similar is not None:
                found, scores = similar
                ok = found >= 0
                return [plain(v) for v in self.catalogue.ids[found[ok]]], [float(v) for v in scores[ok]]
        return [], []


def _checked(candidates: Any, stage: str, users: int) -> Candidates:
    """A stage's output, refused with its name unless it is Candidates with a row per user."""
    if not isinstance(candidates, Candidates):
        raise ConfigError(f"{stage} returned a {type(candidates).__name__}; a stage returns Candidates "
                          "(Candidates.of_source or Candidates.from_ids build them).")
    if candidates.items.ndim != 2 or len(candidates.items) != users:
        raise ConfigError(f"{stage} returned lists of shape {candidates.items.shape}; it needs one row per user "
                          f"({users}).")
    return candidates


def _catalogue(items: pd.DataFrame | None, sources: list[RecallStage], key: str) -> Catalogue:
    known = np.concatenate([source.known_items() for source in sources])
    catalogue = Catalogue(items if items is not None else pd.DataFrame({key: pd.unique(known)}), key=key)
    missing = known[catalogue.index(known) < 0]
    if len(missing):
        catalogue.upsert(pd.DataFrame({key: pd.unique(missing)}))
    catalogue.num_trained = len(catalogue)
    return catalogue


def _feature_reason(effect: dict[str, Any], item_key: str) -> str:
    """One ranker reason in words: what raised the predicted score, and by how much."""
    what = "its own track record" if effect["feature"] == item_key else f"{effect['feature']} {effect['value']}"
    return f"{what} (+{effect['effect']:.4f})"


def _objective_reason(labels: list[str], lift: np.ndarray, scores: dict[str, float], mode: str) -> list[str]:
    """The objective that lifted an item's fused score most above the user's average candidate,
    in words; nothing when none lifted it by at least ``LIFT_SHOWN`` (5% of the score in product
    mode, 0.005 in sum mode)."""
    best = int(np.argmax(lift))
    if not lift[best] >= LIFT_SHOWN[mode]:
        return []
    label = labels[best]
    ratio = math.exp(min(float(lift[best]), 700.0))  # weights up to 100 times a log ratio: no overflow
    how = (f"x{ratio:.2f}" if ratio < 1000 else f"x{ratio:.3g}") if mode == "product" else f"+{lift[best]:.3f}"
    return [f"lifted by {label}: {scores[label]:.3f} (the score {how} against the average candidate)"]


#: The least lift of an objective a reason reports: log 1.05 (x1.05 the score) in product mode.
LIFT_SHOWN = {"product": math.log(1.05), "sum": 0.005}


register_loader("funnel", directory_loader=Funnel.load)
