"""Rank stage: a trained Ranker scores every candidate in one batch, features joined from tables."""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfunnel.data.batch import Batch
from recfunnel.data.checks import plain
from recfunnel.data.encoder import OOV
from recfunnel.data.interactions import lookup_ids, normalize_ids
from recfunnel.errors import ConfigError, SchemaError
from recfunnel.estimators.ranker import Ranker
from recfunnel.funnel.catalogue import Catalogue
from recfunnel.schema import Categorical, Numeric, Sequence
from recfunnel.tasks import MultiTask

CHUNK_ROWS = 1 << 16  # rows per forward pass when scoring many users at once (evaluation)


class Rank:
    """Scores candidates with a fitted :class:`~recfunnel.Ranker`.

    Every input feature of the ranker is read from where it lives: item attributes from the
    catalogue, user attributes from the user table, and the rest from the request's context
    (falling back to ``context`` defaults, then to "missing"). Item and user tables are encoded
    once, so a request only gathers rows of ready tensors.

    Args:
        ranker: A fitted Ranker trained on rows with the same column names.
        users: Optional user table (one row per user id) with the ranker's user features.
        user_key, item_key: The id columns.
        context: Default values of context features (e.g. ``{"position": 1}``).
        candidate_features: Input features computed by the funnel for each candidate (what the
            recall stage knew: see ``recfunnel.funnel.features``); set by two-stage training.
    """

    def __init__(self, ranker: Ranker, *, users: pd.DataFrame | None = None, user_key: str = "user_id",
                 item_key: str = "item_id", context: dict[str, Any] | None = None,
                 candidate_features: list[str] | None = None) -> None:
        model, encoder, task = ranker._fitted()
        if isinstance(task, MultiTask):
            raise ConfigError(f"the Rank stage orders candidates by one score; ranker {ranker.model_name!r} predicts "
                              f"{list(task.labels)}. Train a single-label ranker for the funnel.")
        self.ranker, self.model, self.task = ranker, model, task
        self.encoder = copy.copy(encoder)
        self.encoder.on_nan = "mean"  # missing user or context values get the training mean, silently
        self.encoder.warn_nan = False
        self.user_key, self.item_key = user_key, item_key
        self.context_defaults = dict(context or {})
        self.candidate_features = list(candidate_features or [])
        missing = [name for name in self.candidate_features if name not in self.features]
        if missing:
            raise SchemaError(f"candidate features {missing} are not inputs of this ranker; "
                              f"its inputs: {', '.join(self.features)}.")
        self.users = _user_table(users, user_key)
        self._user_index = pd.Index(self.users[user_key].to_numpy())
        self._user_rows = self._encode(self.users)  # the last row is "unknown user"
        self._user_vocab: pd.Index | None = None
        self._item_vocab: pd.Index | None = None
        self._contexts: dict[tuple, dict[str, torch.Tensor]] = {}
        self._lock = threading.Lock()

    @property
    def features(self) -> list[str]:
        return [spec.name for spec in self.encoder.schema_.inputs]

    def _encode(self, table: pd.DataFrame) -> dict[str, torch.Tensor]:
        """Encode the columns ``table`` has; the others are filled with missing values and dropped."""
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
        spec = self.encoder.schema_[name]
        return isinstance(spec, Sequence) and spec.shares == self.item_key

    def _item_rows(self, catalogue: Catalogue) -> dict[str, torch.Tensor]:
        """Every catalogue item's encoded features, encoded once per catalogue version."""
        return catalogue.derived((self, "items"), lambda state: self._encode(state.table))

    def warm(self, catalogue: Catalogue) -> None:
        """Encode the catalogue's items now rather than in the next request."""
        self._item_rows(catalogue)

    def _user_codes(self, users: np.ndarray) -> np.ndarray:
        """The encoder's index of each raw user id (OOV for unknown ones), via a cached lookup table."""
        if self._user_vocab is None:
            vocabulary = self.encoder.vocabulary(self.user_key)
            self._user_vocab = pd.Index(normalize_ids(np.asarray(vocabulary, dtype=object)))
        found = lookup_ids(self._user_vocab, users)
        return np.where(found >= 0, found + 2, OOV)  # known values start at 2 (0 padding, 1 OOV)

    def _history_codes(self, name: str, history: np.ndarray | None, catalogue: Catalogue, users: int) -> np.ndarray:
        """(B, max_len) encoded recent items, most recent last, left-padded with 0."""
        length = self.encoder.schema_[name].max_len  # type: ignore[union-attr]
        out = np.zeros((users, length), np.int64)
        if history is None or history.size == 0:
            return out
        if self._item_vocab is None:
            vocabulary = self.encoder.vocabulary(self.item_key)
            self._item_vocab = pd.Index(normalize_ids(np.asarray(vocabulary, dtype=object)))
        valid = history >= 0
        packed = np.take_along_axis(history, np.argsort(valid, axis=1, kind="stable"), 1)[:, -length:]  # valid last
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

    def _missing(self, name: str) -> torch.Tensor:
        spec = self.encoder.schema_[name]
        if isinstance(spec, Numeric) and spec.transform != "bucketize":
            return torch.zeros(1, dtype=torch.float32)
        return torch.full((1,), OOV, dtype=torch.int64) if isinstance(spec, Categorical) else \
            torch.zeros((1, getattr(spec, "max_len", 1)), dtype=torch.int64)

    def score(self, users: np.ndarray, items: np.ndarray, catalogue: Catalogue,
              context: dict[str, Any] | None = None, history: np.ndarray | None = None,
              candidates: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(B, N) predictions (probabilities for a click ranker); -inf at empty places."""
        batch = self.batch(users, items, catalogue, context, history, candidates)
        return np.where(items >= 0, self._predict(batch).reshape(items.shape), -np.inf).astype(np.float32)

    def _predict(self, batch: Batch) -> np.ndarray:
        if self.model.training:  # a ranker straight out of fit(): no dropout when serving
            self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), CHUNK_ROWS):
                part = batch[slice(start, start + CHUNK_ROWS)]
                out.append(self.task.link(self.model(part)).float().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

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
        base = self.batch(users, items, catalogue, context, history, candidates)
        sources = self.sources(catalogue)
        names = [name for name in self.features if sources[name] == "item"]  # what differs between items
        item_rows = self._item_rows(catalogue)
        rows = [base] + [Batch({**base.features, name: self._neutral(name, base.features[name], item_rows)})
                         for name in names]
        scores = self._predict(Batch.concat(rows)).reshape(len(rows), *items.shape)
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
                "candidate_features": self.candidate_features}


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
