"""Retriever: the estimator for candidate generation (fit / recommend / similar_items / evaluate / save).

Raw ids in, raw ids out; the model behind it may be gradient-trained (two-tower, YouTube DNN) or
not (popularity, ItemCF, ALS): the Retriever asks neither.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from scipy import sparse

import recfunnel
from recfunnel.data.batch import Batch
from recfunnel.data.checks import check_frame_columns, check_k, plain
from recfunnel.data.encoder import FeatureEncoder
from recfunnel.data.frames import Data, load_frame
from recfunnel.data.infer import describe_schema, infer_schema
from recfunnel.data.interactions import (
    OOV,
    History,
    IdMap,
    Interactions,
    history_for,
    item_batch,
    query_batch,
    retrieval_schema,
    to_codes,
    to_index,
)
from recfunnel.errors import ArtifactError, ConfigError, DataError, NotFittedError, SchemaError
from recfunnel.estimators.artifact import artifact_model, build_for_weights, inconsistent, write_artifact
from recfunnel.estimators.base import DATA_FILES, Report, metrics_report, read_data, resolve_trainer
from recfunnel.estimators.results import Recommendations
from recfunnel.index import INDEX_KINDS, build_index, topk_excluding, topk_static
from recfunnel.metrics import coverage, mae, ranking_report, rmse
from recfunnel.models import build_model, get_model
from recfunnel.models.rating.base import RatingModel
from recfunnel.models.retrieval.base import RetrievalModel
from recfunnel.schema import Categorical, Schema
from recfunnel.tasks import RetrievalTask
from recfunnel.train import Trainer, TrainResult, Validation, distributed

logger = logging.getLogger(__name__)
KS = (10, 20, 50)
# a sequential model is a retrieval model that reads the order; a rating model one that predicts a rating
RETRIEVER_KINDS = ("retrieval", "sequential", "rating")
RATING_METRICS = ("rmse", "mae")
EVAL_ROWS = 65_536  # rows a rating model predicts per pass in evaluate
MAX_LIST_K = 100_000  # the longest list recommend or similar_items returns (B x k is held in memory)
MAX_EVAL_K = 1_000  # the deepest cut-off evaluate ranks to
MAX_HISTORY = 10_000  # recent items kept per user: (users x max_history) ids are held in memory


class Retriever:
    """Generates candidates from interaction logs with any retrieval model in the registry.

    Args:
        model: Registry name of a retrieval model ("popularity", "itemcf", "als", ...).
        params: The model's keyword arguments (checked against its signature).
        user_col, item_col: Columns holding the raw user and item ids.
        time_col: Optional timestamp column (orders histories; needed by time-decayed popularity).
        weight_col: Optional interaction weight (e.g. a count or rating).
        trainer: Trainer or its keyword arguments, for gradient-trained models; options not given
            come from the model's ``trainer_defaults``, then the Trainer's own defaults.
        max_history: Recent items kept per user for history-based models.
        index: Top-k search for models with vectors: "exact" (batched matmul) or a faiss index
            "flat", "ivf" or "hnsw" (needs ``recfunnel[ann]``); models without vectors always
            score the whole catalogue.
        index_params: Options of the faiss index (nprobe, ef_search, hnsw_m, nlist, metric).
        seed: Seeds model initialisation and any sampling in fit.
        monitor: The full-ranking metric of ``fit``'s ``valid`` rows that a gradient-trained
            model's early stopping and learning-rate decay watch each epoch ("recall@10",
            "ndcg@20", "hit@50", ...; a rating model's: "rmse" or "mae"). Default: recall@10, rmse.
        label: The rating column of a rating model (svd, svdpp, ...), which it learns to predict
            and is evaluated on (RMSE, MAE); other models take none.

    Example:
        >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": ["a", "b", "a", "c"]})
        >>> top = Retriever("popularity").fit(frame).recommend([2, 99], k=2)
        >>> top.items.tolist()
        [['b', 'c'], ['a', 'b']]
    """

    def __init__(self, model: str = "als", *, params: dict[str, Any] | None = None, user_col: str = "user_id",
                 item_col: str = "item_id", time_col: str | None = None, weight_col: str | None = None,
                 trainer: Trainer | dict[str, Any] | None = None, max_history: int = 50,
                 index: str = "exact", index_params: dict[str, Any] | None = None, seed: int = 2026,
                 monitor: str | None = None, label: str | None = None) -> None:
        info = get_model(model)
        if info.kind not in RETRIEVER_KINDS:
            raise ConfigError(f"model {model!r} is a {info.kind} model; a Retriever needs a retrieval, sequential or "
                              "rating model (see `recfunnel models --kind retrieval`, `--kind sequential` and "
                              "`--kind rating`).")
        self.model_name, self.params = info.name, dict(params or {})
        self.columns = {"user_col": user_col, "item_col": item_col, "time_col": time_col, "weight_col": weight_col}
        for option, column in self.columns.items():
            if not (isinstance(column, str) and column) and not (column is None and option in ("time_col", "weight_col")):
                raise ConfigError(f"{option} must name a column (a non-empty string); got {column!r}.")
        if index not in INDEX_KINDS:
            raise ConfigError(f"index {index!r} is not valid; expected one of {list(INDEX_KINDS)}.")
        if isinstance(max_history, bool) or not isinstance(max_history, int) or not 1 <= max_history <= MAX_HISTORY:
            raise ConfigError(f"max_history must be an integer in [1, {MAX_HISTORY:,}]; got {max_history!r}.")
        self.max_history, self.seed = max_history, seed
        # a rating model predicts ratings; one that can also learn from the interactions alone
        # (NeuMF) ranks like a retrieval model when no rating column is named
        self.rates = bool(getattr(info.cls, "predicts_ratings", False)) and not (
            label is None and getattr(info.cls, "ranks_without_label", False))
        # the model's own Trainer defaults (two-tower: its batch size; NeuMF's for ranking without a
        # rating column), under the caller's options
        self.trainer, self.trainer_params = resolve_trainer(
            trainer, info.cls, None if self.rates else getattr(info.cls, "ranking_trainer_defaults", None))
        self.label = self._rating_label(label, weight_col)
        if self.rates:
            self.monitor = monitor or "rmse"
            if self.monitor not in RATING_METRICS:
                raise ConfigError(f"monitor {self.monitor!r} is not a rating metric; give one of {list(RATING_METRICS)}.")
        else:  # a ConfigError names the valid metrics
            self.monitor = RetrievalTask(monitor=monitor or "recall@10").monitor
        self.index, self.index_params = index, dict(index_params or {})
        self._index: Any = None
        self.model_: RetrievalModel | None = None
        self.data_: Interactions | None = None
        self.result_: TrainResult | None = None
        self.metrics_: dict[str, Any] = {}
        self._history: list[dict[str, float]] = []  # the saved history_ of a loaded retriever
        self.valid_rows_ = 0  # validation rows kept as history after fit (the last of data_'s rows)
        self.encoders_: dict[str, FeatureEncoder] = {}

    # -- training -------------------------------------------------------------------------------
    def fit(self, train: Data | Interactions, valid: Data | None = None, *,
            user_features: Data | None = None, item_features: Data | None = None) -> Retriever:
        """Encode the interactions, build the model and fit it; with ``valid``, report its metrics.

        Args:
            train: Interactions (a frame or file with the user and item columns).
            valid: Held-out interactions to report full-ranking metrics on; a gradient-trained
                model is also scored on them after every epoch, stops when ``monitor`` stops
                improving (the Trainer's ``patience``) and keeps its best epoch's weights. After
                fit, the valid rows join each user's known history (they happened before anything
                recommended next): later lists leave them out, and models that read the recent
                items (sequential ones above all) read them as the user's latest.
            user_features, item_features: Optional tables keyed by the user / item column, one
                row per id, with any other columns as features (typed like ``recfunnel train``
                types them). Feature-based models (two-tower) read them; items that appear only
                in ``item_features`` join the catalogue and can be recommended without any
                interaction.
        """
        user_col, item_col = self.columns["user_col"] or "user_id", self.columns["item_col"] or "item_id"
        users_table = _keyed_table(user_features, user_col, "user_features")
        items_table = _keyed_table(item_features, item_col, "item_features")
        if isinstance(train, Interactions):
            data = train
        else:
            frame = load_frame(train)
            columns = {k: v for k, v in self.columns.items() if v is not None}
            user_ids = _union_ids(frame, users_table, user_col)
            item_ids = _union_ids(frame, items_table, item_col)
            data = Interactions.from_frame(frame, **columns, user_ids=user_ids, item_ids=item_ids)
        self.encoders_ = {}
        for side, table, key, ids in (("user", users_table, user_col, data.user_ids),
                                      ("item", items_table, item_col, data.item_ids)):
            if table is not None:
                self.encoders_[side], batch = _encode_table(table, key, ids, side)
                setattr(data, f"{side}_features", batch)
        schema = self._schema(len(data.user_ids), len(data.item_ids))
        self.model_, self.metrics_ = None, {}
        self._remember(data.take(data.time_order()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model: RetrievalModel = build_model(self.model_name, schema, self.params)
            if isinstance(model, RatingModel):
                model.explicit = self.rates
            if model.gradient_trained:
                module: Any = model
                check = self._validation(module, valid) if valid is not None else None
                try:
                    self.result_ = self.trainer.fit(module, module.training_task(self.monitor),
                                                    module.training_batch(data, seed=self.seed), check)
                except BaseException:
                    self.model_ = None  # no half-trained model behind a failed fit
                    raise
                module.cpu().eval()  # scored, saved and served on CPUs, whichever device trained it
            else:
                model.fit(data)
        self.model_, self._index = model, None
        self.valid_rows_ = 0
        if valid is not None:
            valid_frame = load_frame(valid)
            self.metrics_["valid"] = self.evaluate(valid_frame, ks=self._valid_ks())
            after = data.encode(valid_frame).known()
            self.valid_rows_ = len(after)
            known = data.append(after)
            self._remember(known.take(known.time_order()))
        return self

    def _validation(self, model: Any, valid: Data) -> Validation:
        """The Trainer's per-epoch check of a gradient-trained model: full-ranking metrics of the
        ``valid`` rows (training items left out), ``monitor`` among them, for early stopping."""
        data = self.data_
        assert data is not None  # _remember ran first
        if self.rates:
            rows = data.encode(load_frame(valid))

            def rated(_: Any) -> dict[str, float]:
                self.model_, self._index = model, None
                model.eval()
                with torch.no_grad(), _on_cpu(model):
                    return self._rating_report(rows)

            return rated
        known = self._known_rows(data, valid)
        depth = RetrievalTask(monitor=self.monitor).depth

        def check(_: Any) -> dict[str, float]:
            self.model_, self._index = model, None
            model.eval()  # the Trainer sets train mode again at the next epoch
            with torch.no_grad(), _on_cpu(model):
                report = self._ranking_report(known, self.seen_, (depth,))  # the monitor alone, each epoch
            return {k: v for k, v in report.items() if k.endswith(f"@{depth}")}

        return check

    def _valid_ks(self) -> tuple[int, ...]:
        """The cut-offs of the validation report: the usual ones and the monitor's."""
        return KS if self.rates else tuple(sorted({*KS, RetrievalTask(monitor=self.monitor).depth}))

    def _rating_label(self, label: str | None, weight_col: str | None) -> str | None:
        """The rating column: required by a rating model, refused by the others."""
        if label is not None and not (isinstance(label, str) and label):
            raise ConfigError(f"label must name the rating column (a non-empty string); got {label!r}.")
        if self.rates and label is None:
            raise ConfigError(f"{self.model_name!r} predicts ratings: name the rating column with --label "
                              "(Retriever(..., label='rating')).")
        if not self.rates and label is not None:
            raise ConfigError(f"--label names the rating of a rating model (svd, svdpp, ...); {self.model_name!r} "
                              "learns from the interactions themselves (weight_col gives their weights).")
        if label is not None and weight_col not in (None, label):
            raise ConfigError("a rating model reads its label as each interaction's value; leave weight_col out.")
        if label is not None:
            self.columns["weight_col"] = label  # the ratings travel as the interactions' values
        return label

    def predict(self, rows: Data) -> np.ndarray:
        """(N,) a rating model's predicted rating of each (user, item) row (the rating column, if
        present, is not read), clipped to the training range; unknown users and items fall back on
        the global mean and the other side's bias.

        Raises:
            ConfigError: The model does not predict ratings (it ranks the catalogue: use recommend).
        """
        model, data = self._fitted()
        if not self.rates:
            raise ConfigError(f"{self.model_name!r} ranks the catalogue rather than scoring rows; use recommend() "
                              "(`recfunnel recommend`) or evaluate() with it.")
        frame = load_frame(rows)
        pairs = Interactions.from_frame(frame, user_col=self.columns["user_col"] or "user_id",
                                        item_col=self.columns["item_col"] or "item_id",
                                        user_ids=data.user_ids, item_ids=data.item_ids)
        return self._predicted(pairs)

    def _predicted(self, rows: Interactions) -> np.ndarray:
        """Predicted ratings of encoded rows, in passes of ``EVAL_ROWS``."""
        model, _ = self._fitted()
        out = []
        with torch.no_grad():
            for start in range(0, len(rows), EVAL_ROWS):
                users, items = rows.users[start:start + EVAL_ROWS], rows.items[start:start + EVAL_ROWS]
                batch = query_batch(users, self.user_history(users), seen=model.reads_seen)
                batch.features["item"] = to_codes(items)
                out.append(model.predict(batch).numpy())  # type: ignore[attr-defined]
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def _rating_report(self, rows: Interactions) -> dict[str, float]:
        """RMSE and MAE of a rating model's predictions of encoded rows (unknown users and items
        included: they fall back on the global mean and the other side's bias)."""
        if rows.weights is None or len(rows) == 0:
            raise DataError("evaluating a rating model needs rows with their ratings.")
        predicted = self._predicted(rows)
        return {"rmse": rmse(rows.weights, predicted), "mae": mae(rows.weights, predicted), "rows": len(rows)}

    @property
    def history_(self) -> list[dict[str, float]]:
        """One row per training epoch of a gradient-trained model (kept in the artifact); empty for the others."""
        return self.result_.history if self.result_ is not None else list(self._history)

    def _schema(self, num_users: int, num_items: int) -> Schema:
        """The model's schema: the ids, the history and the feature tables' fitted specs."""
        tables = {f"{side}_features": enc.schema_ for side, enc in self.encoders_.items()}
        return retrieval_schema(num_users, num_items, max_history=self.max_history, **tables)

    def _remember(self, data: Interactions) -> None:
        """Keep the training interactions (time-ordered) for seen-item exclusion and histories."""
        self.data_ = data
        self.seen_ = data.matrix()
        self.recent_ = data.recent_items(self.max_history)
        self.popularity_ = torch.from_numpy(np.asarray(self.seen_.sum(0)).ravel().astype(np.float32))
        self._static: tuple[torch.Tensor, np.ndarray] | None = None  # the shared list of a popularity model

    def _fitted(self) -> tuple[RetrievalModel, Interactions]:
        if self.model_ is None or self.data_ is None:
            raise NotFittedError("This Retriever is not fitted yet; call fit(...) or recfunnel.load(path) first.")
        return self.model_, self.data_

    # -- inference ------------------------------------------------------------------------------
    def user_history(self, users: np.ndarray, extra: list[list[Any]] | None = None) -> History:
        """Training history of user indices, plus optional recent raw item ids per user."""
        _, data = self._fitted()
        hist = history_for(data, users, self.max_history, self.seen_, self.recent_)
        if extra is None:
            return hist
        if len(extra) != len(users):
            raise DataError(f"got {len(extra)} extra histories for {len(users)} users; pass one list per user.")
        lengths = np.array([len(e) for e in extra])
        flat = data.item_ids.index(np.concatenate([np.asarray(e, dtype=object) for e in extra]) if lengths.sum()
                                   else np.empty(0, np.int64))
        owner = np.repeat(np.arange(len(users)), lengths)
        ok = flat >= 0
        added = sparse.csr_matrix((np.ones(ok.sum(), np.float32), (owner[ok], flat[ok])), shape=hist.matrix.shape)
        matrix = (hist.matrix + added).tocsr()
        matrix.data[:] = 1.0
        recent = hist.recent
        for row in np.flatnonzero(lengths):  # per request, over the few users with live events
            items = flat[owner == row]
            merged = np.concatenate([recent[row][recent[row] >= 0], items[items >= 0]])[-self.max_history:]
            recent[row] = -1
            recent[row, self.max_history - len(merged):] = merged
        added.data[:] = 1.0
        return History(matrix, recent, added)

    def _cold(self, users: np.ndarray, hist: History) -> np.ndarray:
        """Users with nothing known about them: not in training and no history given."""
        return (users < 0) & (np.diff(hist.matrix.indptr) == 0)

    def _scores(self, users: np.ndarray, hist: History) -> torch.Tensor:
        model, _ = self._fitted()
        with torch.no_grad():  # not inference_mode: the rows are edited in place after
            scores = model.score(query_batch(users, hist, seen=model.reads_seen)).float()
        cold = self._cold(users, hist)
        if cold.any():  # the popularity fallback
            scores[torch.from_numpy(cold)] = self.popularity_
        return scores

    def _topk(self, users: np.ndarray, hist: History, k: int,
              exclude: sparse.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, item indices) (B, k): the index for vector models, full scoring otherwise."""
        model, _ = self._fitted()
        if not model.learns_preferences:  # one list for everyone (popularity), less what each has seen
            if self._static is None:
                with torch.no_grad():
                    nobody = np.array([-1])
                    nobody_batch = query_batch(nobody, self.user_history(nobody), seen=model.reads_seen)
                    row = model.score(nobody_batch)[0].float()
                self._static = (row, np.argsort(-row.numpy(), kind="stable"))
            blocked = exclude if exclude is not None else sparse.csr_matrix((len(users), model.num_items))
            return topk_static(self._static[0], self._static[1], k, blocked)
        if self.index == "exact" or not model.has_vectors:
            values, items = topk_excluding(self._scores(users, hist), k, exclude)
            return values.numpy(), items.numpy()
        if self._index is None:
            with torch.no_grad():
                self._index = build_index(model.item_vectors(), self.index, **self.index_params)
        with torch.no_grad():
            queries = model.encode_query(query_batch(users, hist, seen=model.reads_seen))
            values, items = self._index.search(queries, k, exclude)
        cold = self._cold(users, hist)
        if cold.any():
            rows = np.flatnonzero(cold)
            fallback = self.popularity_.expand(len(rows), -1).clone()
            top_values, top_items = topk_excluding(fallback, k, None if exclude is None else exclude[rows])
            values[rows], items[rows] = top_values.numpy(), top_items.numpy()
        return values, items

    def _chunk(self) -> int:
        model, _ = self._fitted()
        return max(1, (1 << 24) // max(model.num_items, 1))  # about 64 MB of float scores per chunk

    def recommend(self, users: Any, k: int = 10, *, exclude_seen: bool = True,
                  recent: list[list[Any]] | None = None) -> Recommendations:
        """Top-``k`` items for raw user ids; unknown users get the popularity fallback.

        Args:
            users: One raw user id or a list of them.
            k: List length.
            exclude_seen: Leave out items the user interacted with in training (and in ``recent``).
            recent: Optional raw item ids per user seen since training (a new user's clicks).
        """
        _, data = self._fitted()
        keys = np.atleast_1d(np.asarray(users, dtype=object if np.ndim(users) == 0 else None))
        index, items, scores = self.top_indices(keys, k, exclude_seen=exclude_seen, recent=recent)
        keys = np.where(index >= 0, data.user_ids.ids[np.maximum(index, 0)].astype(object), keys)  # typed ids
        return self._lists(keys, items, scores)

    def top_indices(self, users: Any, k: int, *, exclude_seen: bool = True,
                    recent: list[list[Any]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``recommend`` in index space: (user indices (B,), item indices (B, k) with -1 where a
        list is short, scores (B, k)); for callers that map items themselves (the funnel)."""
        check_k(k, limit=MAX_LIST_K)
        _, data = self._fitted()
        index = data.user_ids.index(users)
        scores_out, items_out = [], []
        for start in range(0, len(index), self._chunk()):
            part = index[start:start + self._chunk()]
            hist = self.user_history(part, None if recent is None else recent[start:start + len(part)])
            values, items = self._topk(part, hist, k, hist.matrix if exclude_seen else None)
            scores_out.append(values)
            items_out.append(items)
        return index, np.concatenate(items_out), np.concatenate(scores_out)

    def similar_items(self, items: Any, k: int = 10) -> Recommendations:
        """The ``k`` items most similar to each raw item id (never the item itself)."""
        check_k(k, limit=MAX_LIST_K)
        model, data = self._fitted()
        keys = np.atleast_1d(np.asarray(items, dtype=object if np.ndim(items) == 0 else None))
        index = data.item_ids.index(keys)
        unknown = keys[index < 0]
        if len(unknown):
            raise DataError(f"unknown item id(s) {unknown[:5].tolist()}: not in the training data.")
        with torch.no_grad():  # not inference_mode: the rows are edited in place after
            scores = model.similar(item_batch(index)).float()
        itself = sparse.csr_matrix((np.ones(len(index)), (np.arange(len(index)), index)), shape=scores.shape)
        values, top = topk_excluding(scores, k, itself)
        lists = self._lists(data.item_ids.ids[index].astype(object), top.numpy(), values.numpy())
        lists.key = "query_item"  # what each list is for: the item it is similar to
        return lists

    def because_of(self, user: Any, items: Any, *, recent: list[Any] | None = None) -> list[Any]:
        """For each raw item id, the user's history item that produced it (None where the model
        cannot say or nothing did): "because you viewed X". ItemCF can tell; other models return
        None everywhere.
        """
        return self.because_of_many([user], [list(np.atleast_1d(np.asarray(items, dtype=object)))],
                                    recent=None if recent is None else [recent])[0]

    def because_of_many(self, users: Any, items: list[list[Any]], *,
                        recent: Sequence[Sequence[Any] | None] | None = None) -> list[list[Any]]:
        """``because_of`` for several users at once (one vectorised pass)."""
        model, data = self._fitted()
        explain = getattr(model, "explain", None)
        if explain is None:
            return [[None] * len(row) for row in items]
        width = max((len(row) for row in items), default=0)
        wanted = np.full((len(items), width), -1, np.int64)
        for row, values in enumerate(items):  # per user: a list of k candidates
            if len(values):
                wanted[row, : len(values)] = data.item_ids.index(np.asarray(values, dtype=object))
        index = data.user_ids.index(np.asarray(users, dtype=object))
        extra = None if recent is None else [list(r) if r is not None else [] for r in recent]
        query = query_batch(index, self.user_history(index, extra), seen=model.reads_seen)
        source = to_index(explain(query, to_codes(wanted))).numpy()
        return [[plain(data.item_ids.ids[s]) if s >= 0 else None for s in source[row, : len(values)]]
                for row, values in enumerate(items)]

    def encode_query(self, users: Any, *, recent: list[list[Any]] | None = None) -> np.ndarray:
        """(B, D) query vectors of raw user ids ((B, H, D) for multi-interest models)."""
        model, data = self._fitted()
        if not model.has_vectors:
            raise ConfigError(f"{self.model_name!r} has no vectors; encode_query needs a vector model "
                              "(als, bpr, item2vec, youtube_dnn, two_tower, mind).")
        index = data.user_ids.index(np.atleast_1d(np.asarray(users, dtype=object if np.ndim(users) == 0 else None)))
        with torch.no_grad():
            return model.encode_query(query_batch(index, self.user_history(index, recent), seen=model.reads_seen)).numpy()

    def encode_new_items(self, table: pd.DataFrame) -> np.ndarray | None:
        """(N, D) vectors of items described only by their features (added after training), or
        None when the model cannot place an item without an id (no item tower over features)."""
        model, _ = self._fitted()
        encoder = self.encoders_.get("item")
        if encoder is None or not model.reads_item_features or model.item_features is None:
            return None
        columns = [spec.name for spec in encoder.schema_.inputs]
        quiet = copy.copy(encoder)
        quiet.warn_nan = False  # attributes a new item lacks are expected to be missing
        batch = quiet.transform(check_frame_columns(table).reindex(columns=columns), labels=False)
        unknown = torch.full((len(table),), OOV, dtype=torch.int64)  # no id: placed by its features alone
        with torch.no_grad():
            return model.encode_items(Batch({**batch.features, "item": unknown})).numpy()

    def encode_items(self, items: Any = None) -> np.ndarray:
        """(N, D) vectors of raw item ids, or of the whole catalogue in index order when None."""
        model, data = self._fitted()
        if not model.has_vectors:
            raise ConfigError(f"{self.model_name!r} has no vectors; encode_items needs a vector model.")
        with torch.no_grad():
            vectors = model.item_vectors()
        if items is None:
            return vectors.numpy()
        index = data.item_ids.index(np.atleast_1d(np.asarray(items, dtype=object)))
        if (index < 0).any():
            raise DataError(f"unknown item id(s) {np.atleast_1d(items)[index < 0][:5].tolist()}: not in the catalogue.")
        return vectors[torch.from_numpy(index)].numpy()

    def _lists(self, keys: np.ndarray, top: np.ndarray, scores: np.ndarray) -> Recommendations:
        _, data = self._fitted()
        valid = top >= 0
        raw = data.item_ids.ids[np.where(valid, top, 0)].astype(object)
        return Recommendations.from_arrays(keys, raw, scores, valid, source=self.model_name)

    def evaluate(self, test: Data, *, exclude: Data | Sequence[Data] | None = None,
                 ks: tuple[int, ...] = KS) -> dict[str, float]:
        """Full-ranking metrics over the whole catalogue, leaving out each user's training items.

        Args:
            test: Held-out interactions (same columns as training).
            exclude: More interactions to leave out of the ranking (e.g. the validation rows
                when scoring the test rows).
            ks: Cut-offs of recall/ndcg/hit/mrr/precision.

        Returns:
            ``recall@k``, ``ndcg@k``, ``hit@k``, ``mrr@k``, ``precision@k`` for each k, ``coverage@k``
            for the largest k, and ``users``: how many test users were ranked. Test rows of users or
            items unseen in training cannot be ranked and are left out (logged).

        In a run of several processes (torch.distributed) each process lists its share of the
        users and all receive every list, so every process must call it.
        """
        _, data = self._fitted()
        if self.rates:  # a rating model: how close its predicted ratings are (ks and exclude do not apply)
            frame = load_frame(test)
            if self.label not in frame.columns:
                raise SchemaError(f"the test rows have no rating column {self.label!r} to compare the predictions "
                                  f"with; columns present: {', '.join(map(str, frame.columns))}.")
            return self._rating_report(data.encode(frame))
        if not ks:
            raise ConfigError("evaluate needs at least one cut-off k.")
        for k in ks:
            check_k(k, limit=MAX_EVAL_K)
        known = self._known_rows(data, test)
        blocked = self.seen_
        extras: list[Any] = [] if exclude is None else list(exclude) if isinstance(exclude, (list, tuple)) else [exclude]
        for extra in extras:
            blocked = blocked + data.encode(load_frame(extra)).matrix()
        blocked = sparse.csr_matrix(blocked)
        already = np.asarray(self.seen_[known.users, known.items]).ravel() > 0
        if already.all():
            raise DataError("every test row is an interaction this retriever already holds (its training rows, or "
                            "the validation rows fit kept as history), so none can be recommended; evaluate on "
                            "interactions that came later.")
        if already.any():
            logger.warning("evaluate: %d of %d test rows repeat an interaction the retriever already holds; they "
                           "cannot be recommended and count as misses", int(already.sum()), len(already))
        return self._ranking_report(known, blocked, ks)

    @staticmethod
    def _known_rows(data: Interactions, test: Data) -> Interactions:
        """The test rows encoded with the training ids, less (logged) those with an unseen user or item."""
        rows = data.encode(load_frame(test))
        known = rows.known()
        if len(known) < len(rows):
            logger.warning("evaluate: %d of %d test rows have a user or item unseen in training; left out",
                           len(rows) - len(known), len(rows))
        if len(known) == 0:
            raise DataError("no test row has a user and an item seen in training; nothing to evaluate.")
        return known

    def _ranking_report(self, known: Interactions, blocked: sparse.csr_matrix, ks: tuple[int, ...]) -> dict[str, float]:
        """``evaluate``'s metrics of encoded test rows, ``blocked`` (users x items) left out of every list."""
        model, _ = self._fitted()
        users = np.unique(known.users)
        relevant = known.matrix()[users]
        depth = max(ks)
        # one of several training processes lists its share of the users; all then see every list
        shared = distributed.active() and len(users) >= distributed.world()[1]
        mine = users[distributed.my_rows(len(users))] if shared else users
        tops = []  # (each share holds a user)
        for start in range(0, len(mine), self._chunk()):
            part = mine[start:start + self._chunk()]
            hist = self.user_history(part)
            tops.append(self._topk(part, hist, depth, blocked[part])[1].astype(np.int64, copy=False))
        top = np.concatenate(tops)
        if shared:
            top = distributed.gather_rows(torch.from_numpy(top), len(users)).numpy()
        report = ranking_report(top, relevant, ks)
        report[f"coverage@{depth}"] = coverage(top, model.num_items)
        report["users"] = len(users)  # a count, printed as one
        return report

    # -- driven by a config (the CLI) ------------------------------------------------------------
    data_files: ClassVar[tuple[str, ...]] = (*DATA_FILES, "user_features", "item_features")

    @staticmethod
    def takes_data_option(model: str, option: str) -> bool:
        """Whether a config's data ``option`` applies to ``model``: a label only to rating models."""
        return option != "label" or bool(getattr(get_model(model).cls, "predicts_ratings", False))

    def fit_data(self, data: Mapping[str, Any]) -> Retriever:
        """Fit from a config's data section: ``train``, optional ``valid`` and feature tables."""
        train, frames = read_data(data, "valid", "user_features", "item_features")
        return self.fit(train, frames["valid"], user_features=frames["user_features"],
                        item_features=frames["item_features"])

    def evaluate_file(self, path: str | Path, *, fmt: str | None = None, exclude: Sequence[str] = (),
                      ks: tuple[int, ...] | None = None) -> dict[str, Any]:
        """``evaluate`` on a file, leaving out the interactions in the ``exclude`` files too."""
        return self.evaluate(load_frame(path, fmt=fmt), exclude=[load_frame(p, fmt=fmt) for p in exclude],
                             ks=ks or KS)

    def report(self) -> list[Report]:
        """The feature tables' inferred schemas, the data's size and the validation metrics."""
        model, data = self._fitted()
        tables: list[Report] = [(f"inferred {side} schema (saved in the artifact)", ["column", "type", "details"],
                                 [list(r) for r in describe_schema(self.encoders_[side].schema_)])
                                for side in ("user", "item") if side in self.encoders_]
        tables.append((f"{self.model_name} training data", ["users", "items", "interactions"],
                       [[f"{model.num_users:,}", f"{model.num_items:,}", f"{len(data):,}"]]))
        if self.history_:  # a gradient-trained model: one row per epoch, its valid monitor when validated
            tables.append((f"{self.model_name} training", ["epoch", "train loss", f"valid {self.monitor}", "time"],
                           [[int(r["epoch"]), r["train_loss"], r.get(f"valid_{self.monitor}", "-"),
                             f"{r['seconds']:.1f}s"] for r in self.history_]))
        valid = self.metrics_.get("valid", {})
        if self.rates:
            return tables + metrics_report(f"validation (predicted {self.label} against the valid rows)", valid)
        metrics = {k: v for k, v in valid.items() if k.endswith(("@10", "@50")) or k == "users"}
        return tables + metrics_report("validation (full ranking, training items left out)", metrics)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the artifact: model tensors and the training interactions (safetensors), ids (JSON)."""
        model, data = self._fitted()
        weights = {f"model.{k}": v for k, v in model.state_dict().items()}
        weights["train.users"] = torch.from_numpy(data.users.astype(np.int32))
        weights["train.items"] = torch.from_numpy(data.items.astype(np.int32))
        if data.timestamps is not None:  # item recency, a feature of a two-stage funnel's ranker
            weights["train.timestamps"] = torch.from_numpy(data.timestamps.astype(np.float64))
        config = {"estimator": "retriever", "model": self.model_name, "params": self.params,
                  "columns": self.columns, "trainer": self.trainer_params, "max_history": self.max_history,
                  "index": self.index, "index_params": self.index_params, "seed": self.seed,
                  "monitor": self.monitor, "valid_rows": self.valid_rows_, "label": self.label,
                  "recfunnel_version": recfunnel.__version__}
        card = _model_card(self.model_name, self.params, model, len(data) - self.valid_rows_, self.valid_rows_,
                           self.metrics_.get("valid", {}))
        history = self.result_.history if self.result_ else []
        encoders = self.encoders_
        return write_artifact(path, config=config, schema={k: e.schema_.to_dict() for k, e in encoders.items()},
                              encoder={"users": data.user_ids.to_list(), "items": data.item_ids.to_list(),
                                       **{f"{k}_features": e.to_dict() for k, e in encoders.items()}},
                              weights=weights, metrics={**self.metrics_, "history": history}, card=card)


def _model_card(name: str, params: dict[str, Any], model: RetrievalModel, rows: int, valid_rows: int,
                metrics: dict[str, Any]) -> str:
    """The artifact's Markdown card: every hyperparameter the model was built with, defaults included."""
    effective = {**get_model(name).hyperparameters(), **params}
    kept = f" (and {valid_rows} validation interactions kept as the users' history)" if valid_rows else ""
    lines = [f"# {name} retriever", "", f"{model.num_users} users, {model.num_items} items, {rows} training "
             f"interactions{kept}.", "", "## Hyperparameters", ""]
    lines += [f"- `{k}`: {v!r}" + ("" if k in params else " (default)")
              for k, v in sorted(effective.items())] or ["- (none: the model takes no options)"]
    lines += ["", "## Metrics", ""]
    lines += [f"- valid {k}: {v:.5f}" if isinstance(v, float) else f"- valid {k}: {v}"
              for k, v in metrics.items()] or ["- (none)"]
    return "\n".join(lines) + "\n"


def _keyed_table(source: Data | None, key: str, name: str) -> pd.DataFrame | None:
    if source is None:
        return None
    table = load_frame(source)
    if key not in table.columns:
        raise SchemaError(f"{name} has no {key!r} column to join on; columns present: "
                          f"{', '.join(map(str, table.columns))}.")
    duplicated = table[key].duplicated()
    if duplicated.any():
        raise DataError(f"{name} lists {table[key][duplicated].iloc[0]!r} more than once; give one row per id.")
    return table


def _union_ids(frame: pd.DataFrame, table: pd.DataFrame | None, key: str) -> IdMap | None:
    if table is None or key not in frame.columns:
        return None  # Interactions.from_frame reports a missing column
    return IdMap(np.concatenate([frame[key].to_numpy(), table[key].to_numpy()]))


def _encode_table(table: pd.DataFrame, key: str, ids: IdMap, role: str) -> tuple[FeatureEncoder, Batch]:
    """Fit an encoder on a feature table and encode one row per id, in index order."""
    schema = infer_schema(table, [])
    schema = schema.replace(key, role=role) if isinstance(schema[key], Categorical) else schema
    encoder = FeatureEncoder(schema).fit(table)
    position = ids.index(table[key].to_numpy())
    rows = np.full(len(ids), -1)
    rows[position[position >= 0]] = np.flatnonzero(position >= 0)  # table row of each id, -1 for none
    aligned = table.iloc[np.maximum(rows, 0)].reset_index(drop=True)
    if (rows < 0).any():  # ids without a row get empty features (OOV ids, mean numerics)
        aligned.loc[rows < 0, [c for c in table.columns if c != key]] = None
        aligned[key] = ids.ids
        logger.info("%d ids have no row in the %s feature table", int((rows < 0).sum()), key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the NaN-filled rows above are expected, not user data
        return encoder, encoder.transform(aligned, labels=False)


def load_retriever(path: str | Path, parts: dict[str, Any]) -> Retriever:
    """Rebuild a Retriever from a read artifact (see ``recfunnel.load``)."""
    config, weights = parts["config"], parts["weights"]
    artifact_model(path, config, kinds=RETRIEVER_KINDS)  # a registered name, before anything is built from it
    with inconsistent(path, kind="artifact"):
        columns = config["columns"]
        retriever = Retriever(config["model"], params=config.get("params"), trainer=config.get("trainer"),
                              max_history=config.get("max_history", 50), seed=config.get("seed", 2026),
                              index=config.get("index", "exact"), index_params=config.get("index_params"),
                              monitor=config.get("monitor"), label=config.get("label"),
                              **columns)
        user_ids = IdMap.from_list(parts["encoder"]["users"])
        item_ids = IdMap.from_list(parts["encoder"]["items"])
        data = Interactions(weights["train.users"].numpy().astype(np.int64),
                            weights["train.items"].numpy().astype(np.int64), user_ids, item_ids,
                            timestamps=weights["train.timestamps"].numpy() if "train.timestamps" in weights else None,
                            columns={k: v for k, v in columns.items() if v is not None})
        retriever.encoders_ = {side: FeatureEncoder.from_dict(parts["encoder"][f"{side}_features"])
                               for side in ("user", "item") if f"{side}_features" in parts["encoder"]}
        schema = retriever._schema(len(user_ids), len(item_ids))
        model: Any = build_for_weights(
            Path(path) / "model.safetensors", lambda: build_model(retriever.model_name, schema, retriever.params),
            {k[6:]: v for k, v in weights.items() if k.startswith("model.")})
    if model.gradient_trained:
        model.eval()
    retriever.model_ = model
    retriever._remember(data)
    valid_rows = config.get("valid_rows", 0)
    if isinstance(valid_rows, bool) or not isinstance(valid_rows, int) or not 0 <= valid_rows <= len(data):
        raise ArtifactError(f"{str(Path(path) / 'config.json')!r} field 'valid_rows' must be an integer in "
                            f"[0, {len(data)}]; got {valid_rows!r}.")
    retriever.valid_rows_ = valid_rows
    retriever.metrics_ = {k: v for k, v in parts["metrics"].items() if k != "history"}
    retriever._history = parts["metrics"].get("history", [])
    return retriever


@contextlib.contextmanager
def _on_cpu(model: torch.nn.Module) -> Iterator[None]:
    """The model on the CPU inside the block (a validation's candidate scoring, histories and
    index are CPU code), then back on the device that trains it. ``Module.to`` moves the
    parameters' data in place, so the optimisers' hold on them stays good."""
    device = next(iter(model.parameters())).device
    model.cpu()
    try:
        yield
    finally:
        model.to(device)
