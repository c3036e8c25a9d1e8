"""Two-stage funnel training: recall on the past, the ranker on recall's own candidates for the
held-back period, then recall refitted on everything.

This is how the ranker learns the funnel's question ("which of these candidates will the user
take next?") rather than "would they like it, given they rated it" (YouTube's ranker, Covington
et al., RecSys 2016; the OTTO and H&M competition winners' candidate-then-rank pipelines).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recfunnel.data.splits import leave_last_k
from recfunnel.errors import ConfigError, DataError, SchemaError, did_you_mean
from recfunnel.estimators import get_model  # with the estimators that have their own fit registered
from recfunnel.estimators.ranker import Ranker
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel.features import feature_names, feature_specs
from recfunnel.funnel.funnel import Funnel
from recfunnel.funnel.rank import Rank
from recfunnel.funnel.recall import NewItems, Recall
from recfunnel.funnel.rerank import Reranker, lookup
from recfunnel.schema import Categorical, Label, Schema
from recfunnel.schema import Sequence as SequenceSpec
from recfunnel.tasks import OBJECTIVES

logger = logging.getLogger(__name__)
LABEL = "taken"
HISTORY = "recent_items"
BATCH_USERS = 512


@dataclass(frozen=True)
class RecallSpec:
    """One recall source to train: a retrieval model, its list length and options."""

    model: str
    k: int = 100
    name: str | None = None
    params: dict[str, Any] | None = None
    trainer: dict[str, Any] | None = None
    item_features: bool = True  # feature-based models (two-tower) read the item table
    label: str | None = None  # a rating model's rating column

    def fit(self, frame: pd.DataFrame, columns: dict[str, str | None], items: pd.DataFrame | None,
            seed: int) -> Recall:
        retriever = Retriever(self.model, params=self.params, trainer=self.trainer, seed=seed,
                              user_col=str(columns["user_col"]), item_col=str(columns["item_col"]),
                              time_col=columns.get("time_col"), label=self.label)
        features = feature_table(items, str(columns["item_col"])) \
            if items is not None and self.item_features and retriever_reads_features(self.model) else None
        return Recall(retriever.fit(frame, item_features=features), k=self.k, name=self.name)


@dataclass(frozen=True)
class RankSpec:
    """The ranker to train on the candidates: a ranking model, its objective and options."""

    model: str = "deepfm"
    objective: str = "pointwise"  # the best of the three on MovieLens 100K and Amazon Beauty (BENCHMARKS.md)
    params: dict[str, Any] | None = None
    trainer: dict[str, Any] | None = None
    context: dict[str, Any] | None = None

    def __post_init__(self) -> None:  # checked before any recall model is fitted, not after
        info = get_model(self.model)
        if info.kind != "ranking":
            raise ConfigError(f"rank model {self.model!r} is a {info.kind} model; name a ranking model or lambdarank.")
        if info.is_estimator and self.model != "lambdarank":
            raise ConfigError(f"{self.model!r} cannot rank a two-stage funnel yet; use a ranking model "
                              "(deepfm, dcnv2, ...) or lambdarank.")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r} is not valid{did_you_mean(self.objective, OBJECTIVES)}; "
                              f"expected one of {list(OBJECTIVES)}.")


@dataclass(frozen=True)
class Holdout:
    """How the ranker's training lists are made.

    Args:
        last: Each user's latest ``last`` interactions are held back as the items "taken next".
        negatives: Candidates not taken kept per list (a seeded sample; 0 keeps all).
        valid_share: Share of the lists kept out of training for early stopping (NDCG@10).
        history: Recent items the ranker reads as a sequence feature.
        cut: A time instead of ``last``: every interaction at or after it is held back (a number
            in the time column's units, or a date such as "1998-03-01" for a datetime column).
            Training then looks like serving: the period after the cut, for every user active in it.
    """

    last: int = 3
    negatives: int = 100
    valid_share: float = 0.1
    history: int = 30
    cut: float | int | str | None = None

    def __post_init__(self) -> None:
        for name, value, low in (("last", self.last, 1), ("negatives", self.negatives, 0), ("history", self.history, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"two-stage {name} must be an integer >= {low}; got {value!r}.")
        if isinstance(self.valid_share, bool) or not isinstance(self.valid_share, (int, float)) \
                or not 0.0 < self.valid_share < 0.5:
            raise ConfigError(f"two-stage valid_share must be in (0, 0.5); got {self.valid_share!r}.")
        if self.cut is not None and (isinstance(self.cut, bool) or not isinstance(self.cut, (int, float, str))):
            raise ConfigError(f"two-stage cut must be a time (a number or a date); got {self.cut!r}.")

    def split(self, frame: pd.DataFrame, user_col: str, time_col: str | None, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """(past rows, held-back rows) of an interaction log: each user's last ``last``, or the cut."""
        if self.cut is None:
            order = frame[time_col].to_numpy() if time_col else np.arange(len(frame))
            past, future = leave_last_k(frame[user_col].to_numpy(), order, k=self.last, seed=seed)
            if len(future) == 0:
                raise DataError(f"no user has more than {self.last} interaction(s); nothing to hold back for the ranker.")
            return past, future
        if time_col is None:
            raise ConfigError("two-stage cut is a time: name the time column (--time-col).")
        times = frame[time_col]
        dated = pd.api.types.is_datetime64_any_dtype(times)
        try:
            cut = pd.Timestamp(self.cut) if dated else float(self.cut)
        except (TypeError, ValueError):
            raise ConfigError(f"two-stage cut {self.cut!r} is not a {'date' if dated else 'number'} comparable "
                              f"with {time_col!r} ({times.dtype}).") from None
        later = np.asarray(times >= cut, dtype=bool)
        if later.all() or not later.any():
            raise DataError(f"two-stage cut {self.cut!r} leaves nothing {'before' if later.all() else 'after'} it; "
                            f"{time_col!r} runs from {times.min()} to {times.max()}.")
        return np.flatnonzero(~later), np.flatnonzero(later)


def retriever_reads_features(model: str) -> bool:
    return bool(getattr(get_model(model).cls, "reads_item_features", False))


def fit_two_stage(interactions: pd.DataFrame, recall: Sequence[RecallSpec | NewItems], rank: RankSpec,
                  rerank: Sequence[Reranker] = (), *, user_col: str = "user_id", item_col: str = "item_id",
                  time_col: str | None = None, items: pd.DataFrame | None = None,
                  users: pd.DataFrame | None = None, holdout: Holdout | None = None, seed: int = 2026,
                  log: Callable[[str], None] = logger.info) -> Funnel:
    """Train every stage of a funnel from one interaction log.

    1. Each user's latest ``holdout.last`` interactions (by ``time_col``, else by row order), or
       every interaction from ``holdout.cut`` on, are held back; the recall sources are fitted on
       the rest.
    2. For every user with held-back items, the merged candidates become one list: the held-back
       items among them are positives, the others negatives (sampled), each row with what the
       recall stage knew (source ranks and scores, popularity, recency; see
       ``recfunnel.funnel.features``), the user's recent items and the item's attributes.
    3. The ranker is trained on those lists with ``rank.objective``, early stopping on NDCG@10
       of a held-out share of the lists.
    4. The recall sources are refitted on all interactions, and the funnel assembled.

    Raises:
        DataError: No user has both a past and a held-back interaction, or no held-back item is
            among the candidates (the recall lists are too short to learn from).
    """
    holdout = holdout or Holdout()
    frame = _check_log(interactions, user_col, item_col, time_col)
    columns = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
    past_rows, future_rows = holdout.split(frame, user_col, time_col, seed)
    past, future = frame.iloc[past_rows], frame.iloc[future_rows]
    log(f"two-stage: recall on {len(past):,} interactions, ranker targets: {len(future):,} held-back "
        f"interactions of {future[user_col].nunique():,} users")
    early = _fit_recall(recall, past, columns, items, seed, log)
    funnel = Funnel(early, items=items, users=users)
    rows = candidate_rows(funnel, future, holdout, seed)
    positives = int(rows[LABEL].sum())
    if positives == 0:
        raise DataError("none of the held-back items is among the recall candidates; raise the recall k values.")
    lists = rows[user_col].unique()
    valid_users = set(np.random.default_rng(seed).permutation(lists)[: max(1, int(len(lists) * holdout.valid_share))])
    is_valid = rows[user_col].isin(valid_users).to_numpy()
    log(f"two-stage: ranker on {int((~is_valid).sum()):,} candidate rows of {len(lists) - len(valid_users):,} "
        f"lists ({positives:,} taken), validating on {len(valid_users):,} lists")
    schema = ranker_schema(rows, funnel, item_col, holdout.history, users)
    ranker = make_ranker(rank, schema, user_col, seed)
    ranker.fit(rows.loc[~is_valid], rows.loc[is_valid])
    log(f"two-stage: ranker valid {_plain_metrics(ranker.metrics_.get('valid', {}))}; refitting recall on "
        f"all {len(frame):,} interactions")
    final = _fit_recall(recall, frame, columns, items, seed, log)
    stage = Rank(ranker, users=users, user_key=user_col, item_key=item_col, context=rank.context,
                 candidate_features=feature_names(final))
    return Funnel(final, stage, rerank, items=items, users=users)


def make_ranker(rank: RankSpec, schema: Schema, group: str, seed: int) -> Ranker:
    """The ranker a RankSpec names: LightGBM's LambdaRank, or a ranking model with an objective."""
    if rank.model == "lambdarank":
        from recfunnel.estimators.lambdarank import LambdaRanker

        if rank.trainer:
            raise ConfigError("lambdarank is trained by LightGBM; set its options in params, not trainer.")
        return LambdaRanker(label=LABEL, group=group, schema=schema, seed=seed, **(rank.params or {}))
    return Ranker(rank.model, label=LABEL, schema=schema, params=rank.params, trainer=rank.trainer, seed=seed,
                  objective=rank.objective, group=group)


def _fit_recall(recall: Sequence[RecallSpec | NewItems], frame: pd.DataFrame, columns: dict[str, str | None],
                items: pd.DataFrame | None, seed: int, log: Callable[[str], None]) -> list[Recall | NewItems]:
    out: list[Recall | NewItems] = []
    for spec in recall:
        if isinstance(spec, NewItems):
            out.append(spec)
            continue
        log(f"  recall {spec.name or spec.model}: fitting on {len(frame):,} interactions")
        out.append(spec.fit(frame, columns, items, seed))
    return out


def candidate_rows(funnel: Funnel, future: pd.DataFrame, holdout: Holdout, seed: int) -> pd.DataFrame:
    """The ranker's training rows: one per (user, sampled candidate), with every input feature
    and ``taken`` (1 where the user's held-back interactions include the candidate)."""
    user_col, item_col = funnel.user_key, funnel.item_key
    users = pd.unique(future[user_col].to_numpy())
    targets = _target_matrix(funnel, future, users)
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, len(users), BATCH_USERS):  # each batch is vectorised over its users
        batch = np.asarray(users[start:start + BATCH_USERS], dtype=object)
        query = funnel.query(batch, 0)
        lists, merged = funnel.recall_stage(query)
        taken = lookup(targets[start:start + len(batch)], merged.items)
        keep = _sample(merged.valid, taken, holdout.negatives, rng)
        keep &= taken.any(axis=1, keepdims=True)  # a list with nothing taken teaches no order
        row, place = np.nonzero(keep)
        features = funnel.candidate_features(lists, merged, query.seen)
        part = {user_col: batch[row], item_col: funnel.catalogue.ids[merged.items[row, place]]}
        part.update({name: values[row, place] for name, values in features.items()})
        part[HISTORY] = _history_lists(funnel, query.history, holdout.history)[row]
        part[LABEL] = taken[row, place].astype(np.int64)
        parts.append(pd.DataFrame(part))
    rows = pd.concat(parts, ignore_index=True)
    attributes = [c for c in funnel.catalogue.table.columns if c != item_col]
    if attributes:
        index = funnel.catalogue.index(rows[item_col].to_numpy())
        table = funnel.catalogue.table[attributes].iloc[index].reset_index(drop=True)
        rows = pd.concat([rows, table], axis=1)
    if funnel.users is not None:
        rows = rows.merge(funnel.users.drop_duplicates(user_col), on=user_col, how="left")
    return rows


def _target_matrix(funnel: Funnel, future: pd.DataFrame, users: np.ndarray) -> sparse.csr_matrix:
    row = pd.Index(users).get_indexer(future[funnel.user_key].to_numpy())
    col = funnel.catalogue.index(future[funnel.item_key].to_numpy())
    ok = (row >= 0) & (col >= 0)
    return sparse.csr_matrix((np.ones(ok.sum(), np.float32), (row[ok], col[ok])),
                             shape=(len(users), len(funnel.catalogue)))


def _sample(valid: np.ndarray, taken: np.ndarray, negatives: int, rng: np.random.Generator) -> np.ndarray:
    """(B, N) True for every taken place and for up to ``negatives`` random others per row."""
    if negatives == 0:
        return valid.copy()
    other = valid & ~taken
    keys = np.where(other, rng.random(valid.shape), np.inf)
    order = np.argsort(keys, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(valid.shape[1])[None].repeat(len(valid), 0), 1)
    return taken | (other & (rank < negatives))


def _history_lists(funnel: Funnel, history: np.ndarray, length: int) -> np.ndarray:
    """(B,) object array: each user's latest ``length`` recent raw item ids (oldest first)."""
    ids = funnel.catalogue.ids
    out = np.empty(len(history), dtype=object)
    out[:] = [ids[row[row >= 0][-length:]].tolist() for row in history]  # per user, not per row
    return out


def ranker_schema(rows: pd.DataFrame, funnel: Funnel, item_col: str, history: int,
                  users: pd.DataFrame | None) -> Schema:
    """The ranker's inputs: the item id and attributes, the user's attributes (not the user id:
    each user is one list, so an id embedding would only memorise), the recent items, and the
    candidate features."""
    from recfunnel.data.infer import infer_schema

    specs: list[Any] = [Categorical(item_col, role="item")]
    tables = [funnel.catalogue.table.drop(columns=[item_col])]
    if users is not None:
        tables.append(users.drop(columns=[funnel.user_key]))
    for table in tables:
        usable = [c for c in table.columns if _usable(table[c])]
        if usable:
            specs += [spec for spec in infer_schema(rows[usable].assign(**{LABEL: rows[LABEL]}), LABEL).inputs]
    specs.append(SequenceSpec(HISTORY, max_len=history, shares=item_col))
    specs += feature_specs(feature_names(funnel.recall))
    return Schema(*specs, Label(LABEL, kind="binary"))


def feature_table(items: pd.DataFrame, key: str) -> pd.DataFrame:
    """The item table less free-text columns, for models that read item attributes."""
    return items[[key, *(c for c in items.columns if c != key and _usable(items[c]))]]


def _usable(column: pd.Series) -> bool:
    """An attribute worth a feature: not free text such as titles (nearly one value per item)."""
    values = column.dropna()
    if values.empty:
        return False
    if values.dtype.kind == "O" and values.astype(str).str.contains(r"\|").mean() <= 0.5:
        return values.nunique() <= 0.5 * len(values)
    return values.dtype.kind in "biufO"


def _check_log(frame: pd.DataFrame, user_col: str, item_col: str, time_col: str | None) -> pd.DataFrame:
    for column in (user_col, item_col, time_col):
        if column is not None and column not in frame.columns:
            raise SchemaError(f"interactions have no {column!r} column; columns present: "
                              f"{', '.join(map(str, frame.columns))}. Name the columns with --user-col, "
                              f"--item-col and --time-col.")
    if len(frame) == 0:
        raise DataError("the interaction log has no rows.")
    return frame.reset_index(drop=True)


def _plain_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "(none)"
