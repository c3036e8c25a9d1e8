"""Rank stage: any fitted scorer scores every candidate in one batch, features joined from tables.

A scorer that can score encoded batches (a torch ``Ranker``: ``score_encoded`` and ``encoder_``)
gets ready tensors gathered from tables encoded once; any other scorer (GBDT+LR, FTRL, a plugin)
gets the candidates as raw rows through its ``predict(frame)``, its inputs named by
``feature_names_``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfunnel.data.batch import Batch
from recfunnel.data.checks import plain
from recfunnel.data.encoder import OOV, quiet_nan
from recfunnel.data.interactions import lookup_ids, normalize_ids
from recfunnel.errors import ConfigError, SchemaError
from recfunnel.estimators.ranker import Ranker
from recfunnel.funnel.candidates import Candidates, Query
from recfunnel.funnel.catalogue import Catalogue
from recfunnel.schema import Categorical, Numeric, Sequence

CHUNK_ROWS = 1 << 16  # rows per predict call when scoring many users at once (evaluation)


class Rank:
    """Scores candidates with any fitted scorer: a torch :class:`~recfunnel.Ranker`, GBDT+LR, FTRL.

    Every input feature of the scorer is read from where it lives: item attributes from the
    catalogue, user attributes from the user table, and the rest from the request's context
    (falling back to ``context`` defaults, then to "missing"). For a torch Ranker, item and user
    tables are encoded once, so a request only gathers rows of ready tensors; another scorer gets
    the same values as raw rows (``predict(frame)``).

    Args:
        ranker: A fitted scorer of one label trained on rows with the same column names.
        users: Optional user table (one row per user id) with the ranker's user features.
        user_key, item_key: The id columns.
        context: Default values of context features (e.g. ``{"position": 1}``).
        candidate_features: Input features computed by the funnel for each candidate (what the
            recall stage knew: see ``recfunnel.funnel.features``); set by two-stage training.
        fuse: For a multi-task ranker, a weight per objective: the candidates are ordered by the
            weighted product of the objectives' probabilities, Π p_label^weight (``mode="product"``),
            or their weighted sum (``mode="sum"``). A regression objective (dwell time) enters
            with its predicted value (clipped at 1e-12 in a product: use ``mode="sum"`` for one
            that may be negative). Labels left out weigh 0. Required when the
            ranker predicts several labels, refused when it predicts one.
        mode: "product" or "sum", how ``fuse`` combines the objectives.
    """

    def __init__(self, ranker: Ranker, *, users: pd.DataFrame | None = None, user_key: str = "user_id",
                 item_key: str = "item_id", context: dict[str, Any] | None = None,
                 candidate_features: list[str] | None = None, fuse: dict[str, float] | None = None,
                 mode: str = "product") -> None:
        if not callable(getattr(ranker, "predict", None)) or not hasattr(ranker, "feature_names_"):
            raise ConfigError(f"the Rank stage needs a fitted scorer with predict(rows) and feature_names_ (its "
                              f"input columns); got {type(ranker).__name__}.")
        self.labels = list(getattr(ranker, "labels_", ()))
        self.fuse, self.mode = _fuse_weights(self.labels, fuse, mode, str(getattr(ranker, "model_name", "")))
        self.ranker = ranker
        self.name = str(getattr(ranker, "model_name", type(ranker).__name__))
        self.encoded = callable(getattr(ranker, "score_encoded", None))
        encoder = getattr(ranker, "encoder_", None)
        self.schema = encoder.schema_ if encoder is not None else None
        self.encoder = copy.copy(encoder) if self.encoded else None
        if self.encoder is not None:
            self.encoder.on_nan = "mean"  # missing user or context values get the training mean, silently
            self.encoder.warn_nan = False
        self._features = [str(name) for name in ranker.feature_names_]
        self.user_key, self.item_key = user_key, item_key
        self.context_defaults = dict(context or {})
        self.candidate_features = list(candidate_features or [])
        missing = [name for name in self.candidate_features if name not in self.features]
        if missing:
            raise SchemaError(f"candidate features {missing} are not inputs of this ranker; "
                              f"its inputs: {', '.join(self.features)}.")
        self.users = _user_table(users, user_key)
        self._user_index = pd.Index(self.users[user_key].to_numpy())
        self._user_rows = self._encode(self.users) if self.encoded else {}  # the last row is "unknown user"
        self._user_vocab: pd.Index | None = None
        self._item_vocab: pd.Index | None = None
        self._contexts: dict[tuple, dict[str, torch.Tensor]] = {}
        self._lock = threading.Lock()

    @property
    def features(self) -> list[str]:
        """The scorer's input columns."""
        return list(self._features)

    def _encode(self, table: pd.DataFrame) -> dict[str, torch.Tensor]:
        """Encode the columns ``table`` has; the others are filled with missing values and dropped."""
        assert self.encoder is not None  # the encoded path only
        batch = self.encoder.transform(table.reindex(columns=self.features), labels=False)
        return {name: batch.features[name] for name in self.features if name in table.columns}

    def sources(self, catalogue: Catalogue) -> dict[str, str]:
        """Where each input feature comes from: "candidate" (computed by the funnel per candidate),
        "item", "user", "history" (a Sequence over the item vocabulary, filled from the user's
        recent items, live events included) or "context"."""
        return {name: "candidate" if name in self.candidate_features else
                "item" if catalogue.has(name) else
                "user" if name in self.users.columns or name == self.user_key else
                "history" if self._is_history(name) else "context"
                for name in self.features}

    def _is_history(self, name: str) -> bool:
        spec = self.schema[name] if self.schema is not None and name in self.schema else None
        return isinstance(spec, Sequence) and spec.shares == self.item_key

    def history_lengths(self) -> list[int]:
        """``max_len`` of each Sequence input over the item vocabulary (filled from recent items)."""
        if self.schema is None:
            return []
        return [int(getattr(self.schema[name], "max_len", 0)) for name in self.features if self._is_history(name)]

    def _item_rows(self, catalogue: Catalogue) -> dict[str, torch.Tensor]:
        """Every catalogue item's encoded features, encoded once per catalogue version."""
        return catalogue.derived((self, "items"), lambda state: self._encode(state.table))

    def warm(self, catalogue: Catalogue) -> None:
        """Encode the catalogue's items now rather than in the next request."""
        if self.encoded:
            self._item_rows(catalogue)

    def _user_codes(self, users: np.ndarray) -> np.ndarray:
        """The encoder's index of each raw user id (OOV for unknown ones), via a cached lookup table."""
        assert self.encoder is not None  # the encoded path only
        if self._user_vocab is None:
            vocabulary = self.encoder.vocabulary(self.user_key)
            self._user_vocab = pd.Index(normalize_ids(np.asarray(vocabulary, dtype=object)))
        found = lookup_ids(self._user_vocab, users)
        return np.where(found >= 0, found + 2, OOV)  # known values start at 2 (0 padding, 1 OOV)

    def _recent(self, name: str, history: np.ndarray | None, users: int) -> np.ndarray:
        """(B, <= max_len) catalogue indices of the recent items a Sequence input reads, latest
        last, left-padded with -1."""
        length = self.schema[name].max_len  # type: ignore[index, union-attr]
        if history is None or history.size == 0:
            return np.full((users, 0), -1, np.int64)
        valid = history >= 0
        return np.take_along_axis(history, np.argsort(valid, axis=1, kind="stable"), 1)[:, -length:]  # valid last

    def _history_codes(self, name: str, history: np.ndarray | None, catalogue: Catalogue, users: int) -> np.ndarray:
        """(B, max_len) encoded recent items, most recent last, left-padded with 0."""
        assert self.encoder is not None  # the encoded path only
        length = self.encoder.schema_[name].max_len  # type: ignore[union-attr]
        out = np.zeros((users, length), np.int64)
        packed = self._recent(name, history, users)
        if packed.size == 0:
            return out
        if self._item_vocab is None:
            vocabulary = self.encoder.vocabulary(self.item_key)
            self._item_vocab = pd.Index(normalize_ids(np.asarray(vocabulary, dtype=object)))
        found = lookup_ids(self._item_vocab, catalogue.ids[np.maximum(packed, 0)].ravel()).reshape(packed.shape)
        codes = np.where(packed >= 0, np.where(found >= 0, found + 2, OOV), 0)
        out[:, length - codes.shape[1]:] = codes
        return out

    def user_rows(self, users: np.ndarray) -> np.ndarray:
        """Row of each raw user id in the user table; unknown users get the last ("unknown") row."""
        found = lookup_ids(self._user_index, users)
        return np.where(found >= 0, found, len(self.users) - 1)

    def _context(self, context: dict[str, Any] | None) -> dict[str, torch.Tensor]:
        values = {**self.context_defaults, **(context or {})}
        key = tuple(sorted((k, str(v)) for k, v in values.items()))
        found = self._contexts.get(key)
        if found is None:
            frame = pd.DataFrame({k: [v] for k, v in values.items() if k in self.features})
            found = self._encode(frame) if len(frame.columns) else {}
            with self._lock:  # requests run in threads
                if len(self._contexts) >= 256:
                    self._contexts = {}
                self._contexts[key] = found
        return found

    def batch(self, users: np.ndarray, items: np.ndarray, catalogue: Catalogue,
              context: dict[str, Any] | None = None, history: np.ndarray | None = None,
              candidates: dict[str, np.ndarray] | None = None) -> Batch:
        """The ranker's input for (B,) raw users x (B, N) catalogue indices, flattened to B * N rows.

        ``history`` is (B, H) catalogue indices of each user's recent items, oldest first, -1
        padded; it fills Sequence features that share the item vocabulary. ``candidates`` holds
        the (B, N) raw values of the candidate features.
        """
        assert self.encoder is not None  # the encoded path only (see ``frame`` for the other)
        sources = self.sources(catalogue)
        item_rows = self._item_rows(catalogue)
        flat = torch.from_numpy(np.maximum(items, 0).ravel())
        owner = torch.from_numpy(np.repeat(self.user_rows(users), items.shape[1]))
        context_rows = self._context(context)
        features = {}
        for name, source in sources.items():
            if source == "candidate":
                if candidates is None or name not in candidates:
                    raise SchemaError(f"candidate feature {name!r} was not computed; rank through the Funnel.")
                features[name] = torch.from_numpy(self.encoder.encode_numeric(name, candidates[name].ravel()))
            elif source == "item":
                features[name] = item_rows[name][flat]
            elif name == self.user_key:  # encoded from the request's id: a user table is optional
                features[name] = torch.from_numpy(self._user_codes(users)).repeat_interleave(items.shape[1])
            elif source == "user":
                features[name] = self._user_rows[name][owner]
            elif source == "history":
                rows = self._history_codes(name, history, catalogue, len(users))
                features[name] = torch.from_numpy(rows).repeat_interleave(items.shape[1], dim=0)
            else:
                value = context_rows.get(name)
                if value is None:
                    value = self._missing(name)
                features[name] = value.expand(len(flat), *value.shape[1:])
        return Batch(features)

    def frame(self, users: np.ndarray, items: np.ndarray, catalogue: Catalogue,
              context: dict[str, Any] | None = None, history: np.ndarray | None = None,
              candidates: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """``batch`` as raw values: one row per (user, candidate) place, a column per scorer input,
        None where a value is unknown (the scorer's own missing-value rule applies)."""
        width, flat = items.shape[1], np.maximum(items, 0).ravel()
        owner = np.repeat(self.user_rows(users), width)
        values = {**self.context_defaults, **(context or {})}
        columns: dict[str, Any] = {}
        for name, source in self.sources(catalogue).items():
            if source == "candidate":
                if candidates is None or name not in candidates:
                    raise SchemaError(f"candidate feature {name!r} was not computed; rank through the Funnel.")
                columns[name] = candidates[name].ravel()
            elif source == "item":
                columns[name] = catalogue.column(name)[flat]
            elif name == self.user_key:
                columns[name] = np.repeat(np.asarray(users, dtype=object), width)
            elif source == "user":
                columns[name] = self.users[name].to_numpy()[owner]
            elif source == "history":
                recent = self._recent(name, history, len(users))
                sep = getattr(self.schema[name], "sep", "|")  # type: ignore[index]
                # one string per user (not per candidate), as a Sequence column is written in a file
                texts = [sep.join(str(v) for v in catalogue.ids[row[row >= 0]]) for row in recent]
                columns[name] = np.repeat(np.asarray(texts or [""] * len(users), dtype=object), width)
            else:
                columns[name] = np.full(len(flat), values.get(name), dtype=object)
        return pd.DataFrame(columns)

    def _missing(self, name: str) -> torch.Tensor:
        assert self.encoder is not None  # the encoded path only
        spec = self.encoder.schema_[name]
        if isinstance(spec, Numeric) and spec.transform != "bucketize":
            return torch.zeros(1, dtype=torch.float32)
        return torch.full((1,), OOV, dtype=torch.int64) if isinstance(spec, Categorical) else \
            torch.zeros((1, getattr(spec, "max_len", 1)), dtype=torch.int64)

    def __call__(self, query: Query, candidates: Candidates) -> Candidates:
        """The candidates re-scored by the scorer and sorted, best first; a multi-task ranker's
        objectives are kept next to the fused score (``Candidates.objectives``)."""
        outputs = self.outputs(query.users, candidates.items, query.catalogue, query.context, query.history,
                               candidates.features or None)
        ranked = candidates.with_scores(self._combine(outputs))
        if self.fuse is not None:
            ranked.objectives = {label: outputs[..., t].astype(np.float32) for t, label in enumerate(self.labels)}
        return ranked.sorted()

    def score(self, users: np.ndarray, items: np.ndarray, catalogue: Catalogue,
              context: dict[str, Any] | None = None, history: np.ndarray | None = None,
              candidates: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(B, N) predictions (probabilities for a click ranker; the fused objective for a
        multi-task one); -inf at empty places."""
        scores = self._combine(self.outputs(users, items, catalogue, context, history, candidates))
        return np.where(items >= 0, scores, -np.inf).astype(np.float32)

    def outputs(self, users: np.ndarray, items: np.ndarray, catalogue: Catalogue,
                context: dict[str, Any] | None = None, history: np.ndarray | None = None,
                candidates: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(B, N, T) the scorer's prediction of each of its T labels (T = 1 for a single-label
        scorer), in ``self.labels`` order; undefined at empty places."""
        if self.encoded:
            flat = self._raw_encoded(self.batch(users, items, catalogue, context, history, candidates))
        else:
            flat = self._predict_rows(self.frame(users, items, catalogue, context, history, candidates))
        return np.asarray(flat, dtype=np.float32).reshape(*items.shape, self._width)

    @property
    def _width(self) -> int:
        """T, the predictions per row the stage reads: every label of a fused ranker, else one."""
        return len(self.labels) if self.fuse is not None else 1

    def _raw_encoded(self, batch: Batch) -> np.ndarray:
        """(N, T) every label's prediction of encoded rows ((N,) for a single-label scorer)."""
        if self.fuse is None:
            return np.asarray(self.ranker.score_encoded(batch))
        return np.asarray(self.ranker.score_encoded_all(batch))

    def _combine(self, outputs: np.ndarray) -> np.ndarray:
        """``outputs`` (..., T) as one score (...): the fused objective of a multi-task scorer."""
        return np.asarray(outputs)[..., 0] if self.fuse is None else self._fused(outputs)

    def _fused(self, probabilities: np.ndarray) -> np.ndarray:
        """(...) the fused objective of (..., T) per-label probabilities, in ``self.labels`` order."""
        assert self.fuse is not None
        total = (self.weights() * self._fuse_terms(np.asarray(probabilities, dtype=np.float64))).sum(-1)
        return (total if self.mode == "sum" else np.exp(total)).astype(np.float32)

    def weights(self) -> np.ndarray:
        """(T,) the fuse weight of each label, in ``self.labels`` order (0 for a label left out)."""
        assert self.fuse is not None
        return np.array([self.fuse.get(label, 0.0) for label in self.labels], dtype=np.float64)

    def _fuse_terms(self, p: np.ndarray) -> np.ndarray:
        """What each weight multiplies: the prediction (sum mode) or its log (product mode; a
        regression label's value, such as a dwell time, may pass 1; values under 1e-12 count as 1e-12)."""
        return p if self.mode == "sum" else np.log(np.maximum(p, 1e-12))

    def lifts(self, objectives: dict[str, np.ndarray], candidates: dict[str, np.ndarray],
              valid: np.ndarray) -> np.ndarray:
        """(B, N, T) how much each objective raised the fused score of the items whose (B, N)
        ``objectives`` are given, above the average of the user's ranked ``candidates`` ((B, M)
        objectives, ``valid`` (B, M)): weight x (term - the candidates' mean term), the term being
        the probability (sum mode) or its log (product mode; a lift of log 2 doubles the score)."""
        def terms(found: dict[str, np.ndarray]) -> np.ndarray:
            return self._fuse_terms(np.stack([found[label] for label in self.labels], axis=-1).astype(np.float64))

        pool = terms(candidates)
        count = np.maximum(valid.sum(1), 1)[:, None, None]
        mean = np.where(valid[..., None], pool, 0.0).sum(1, keepdims=True) / count
        return self.weights() * (terms(objectives) - mean)

    def _score_encoded(self, batch: Batch) -> np.ndarray:
        """(N,) the scorer's prediction of encoded rows, the objectives fused for a multi-task one."""
        return self._combine(self._raw_encoded(batch).reshape(len(batch), self._width))

    def _predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """A scorer's ``predict`` over raw rows, in chunks (evaluation scores many users at once):
        (N,) for a single-label scorer, (N, T) for a multi-task one."""
        with quiet_nan():  # unknown values are None on purpose (explanations, missing context)
            out = [np.asarray(self.ranker.predict(frame.iloc[start:start + CHUNK_ROWS]), dtype=np.float32)
                   for start in range(0, len(frame), CHUNK_ROWS)]
        if not out:
            return np.zeros((0, len(self.labels)) if self.fuse is not None else 0, np.float32)
        scores = np.concatenate(out)
        return scores.reshape(len(frame), -1) if self.fuse is not None else scores.ravel()

    def explain(self, users: np.ndarray, items: np.ndarray, catalogue: Catalogue,
                context: dict[str, Any] | None = None, history: np.ndarray | None = None,
                candidates: dict[str, np.ndarray] | None = None, *, top: int = 2) -> list[list[list[dict[str, Any]]]]:
        """For each user's items, the item features that raised the score most: the drop in the
        prediction when one feature is set to a neutral value (unknown id, empty bag, table mean),
        for every user, item and feature in one forward pass.

        Args:
            users: (B,) raw user ids.
            items: (B, N) catalogue indices, -1 for none (skipped).
            history: (B, H) recent items for Sequence features (see ``batch``).
            candidates: (B, N) candidate feature values (see ``batch``).

        Returns:
            Per user, per item present, up to ``top`` dicts ``{"feature", "value", "effect"}``
            with effect > 0.
        """
        sources = self.sources(catalogue)
        names = [name for name in self.features if sources[name] == "item"]  # what differs between items
        if self.encoded:
            base = self.batch(users, items, catalogue, context, history, candidates)
            item_rows = self._item_rows(catalogue)
            rows = [base] + [Batch({**base.features, name: self._neutral(name, base.features[name], item_rows)})
                             for name in names]
            flat = self._score_encoded(Batch.concat(rows))
        else:  # the feature set to missing: the scorer's own neutral value
            table = self.frame(users, items, catalogue, context, history, candidates)
            flat = self._combine(self._predict_rows(pd.concat(
                [table, *(table.assign(**{name: None}) for name in names)], ignore_index=True)).reshape(
                len(table) * (len(names) + 1), self._width))
        scores = np.asarray(flat).reshape(len(names) + 1, *items.shape)
        effect = scores[0][None] - scores[1:]  # (F, B, N)
        best = np.argsort(-effect, axis=0)[:top]  # (top, B, N)
        values = {name: catalogue.column(name) for name in names}
        out = []
        for row in range(items.shape[0]):  # the final lists only: k items per user
            out.append([[{"feature": names[f], "value": plain(values[names[f]][items[row, n]]),
                          "effect": round(float(effect[f, row, n]), 4)}
                         for f in best[:, row, n] if effect[f, row, n] > 1e-4]
                        for n in range(items.shape[1]) if items[row, n] >= 0])
        return out

    def _neutral(self, name: str, values: torch.Tensor, item_rows: dict[str, torch.Tensor]) -> torch.Tensor:
        assert self.encoder is not None  # the encoded path only
        spec = self.encoder.schema_[name]
        if isinstance(spec, Numeric) and values.dtype.is_floating_point:
            table = item_rows if name in item_rows else self._user_rows
            mean = table[name].float().mean() if name in table else torch.tensor(0.0)
            return torch.full_like(values, float(mean))
        if isinstance(spec, Categorical) or values.dim() == 1:
            return torch.full_like(values, OOV)
        return torch.zeros_like(values)

    def to_dict(self) -> dict[str, Any]:
        return {"user_key": self.user_key, "item_key": self.item_key, "context": self.context_defaults,
                "candidate_features": self.candidate_features,
                **({"fuse": self.fuse, "mode": self.mode} if self.fuse is not None else {})}


FUSE_MODES = ("product", "sum")


def _fuse_weights(labels: list[str], fuse: Any, mode: str, name: str) -> tuple[dict[str, float] | None, str]:
    """The checked ``fuse`` weights of a ranker's labels (None for a single-label ranker)."""
    if mode not in FUSE_MODES:
        raise ConfigError(f"fuse mode {mode!r} is not valid; expected one of {list(FUSE_MODES)}.")
    if len(labels) <= 1:
        if fuse is not None:
            raise ConfigError(f"fuse combines a multi-task ranker's objectives; ranker {name!r} predicts one score.")
        return None, mode
    if fuse is None:
        raise ConfigError(f"ranker {name!r} predicts {labels}; the Rank stage orders by one score, so give "
                          f"fuse={{label: weight}} (e.g. {{{labels[0]!r}: 1.0, {labels[1]!r}: 0.5}}).")
    if not isinstance(fuse, dict) or not fuse:
        raise ConfigError(f"fuse must map labels to weights; got {fuse!r}.")
    weights = {}
    for label, weight in fuse.items():
        if label not in labels:
            raise ConfigError(f"fuse names {label!r}, which ranker {name!r} does not predict; its labels: {labels}.")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 100:
            raise ConfigError(f"fuse weight of {label!r} must be a number in [0, 100]; got {weight!r}.")
        weights[str(label)] = float(weight)
    if not any(weights.values()):
        raise ConfigError("fuse gives every objective weight 0; give at least one a positive weight.")
    return weights, mode


def _user_table(users: pd.DataFrame | None, key: str) -> pd.DataFrame:
    """The user table with one extra all-missing row at the end for users it does not know."""
    if users is None:
        users = pd.DataFrame({key: np.empty(0, dtype=object)})
    if key not in users.columns:
        raise SchemaError(f"the user table has no {key!r} column; columns present: {list(users.columns)}.")
    users = users.drop_duplicates(key).reset_index(drop=True)
    users[key] = normalize_ids(users[key].to_numpy())
    unknown = pd.DataFrame({c: [None] for c in users.columns})
    return pd.concat([users, unknown], ignore_index=True)
