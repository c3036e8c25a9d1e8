"""FTRLRanker: online logistic regression on hashed features, learnt in one streaming pass over any file size."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

import recfunnel
from recfunnel.data.checks import check_bool, check_frame_columns, check_two_classes
from recfunnel.data.columns import hash_values, numeric_column, strings
from recfunnel.data.frames import Data
from recfunnel.data.readers import CRITEO_COLUMNS
from recfunnel.data.stream import iter_chunks
from recfunnel.errors import ConfigError, DataError, NotFittedError, SchemaError
from recfunnel.estimators.artifact import inconsistent, model_card, write_artifact
from recfunnel.estimators.base import DATA_FILES, Report, ignore_list_options, metrics_report
from recfunnel.metrics import auc, logloss
from recfunnel.models import register_estimator
from recfunnel.schema import Categorical, Label, Schema
from recfunnel.train.ftrl_proximal import FTRLProximal, check_hyperparameters, sigmoid

KINDS = ("categorical", "numeric")


def discretize(values: np.ndarray) -> np.ndarray:
    """Integer buckets of numbers, Criteo-style: floor(x) for |x| <= 2, else ±(3 + floor(log(|x|)**2)).

    The 2014 Criteo Kaggle winners' floor(log(x)**2), shifted by 3 so large values never share a
    bucket with 0, 1 or 2, and mirrored for negatives. Buckets are monotone in x and need no
    statistics, so a streaming learner can use them from its first row. Meant for counts; other
    reals (prices, ratios) lose resolution below 2 and are better pre-bucketed or passed as strings.

    Args:
        values: float64 array; NaN stays NaN (missing).

    Example:
        >>> discretize(np.array([0.0, 2.0, 3.0, 10.0, 1e6, -50.0, np.nan])).tolist()
        [0.0, 2.0, 4.0, 8.0, 193.0, -18.0, nan]
    """
    magnitude = np.abs(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        large = np.sign(values) * (3.0 + np.floor(np.log(np.where(magnitude > 2, magnitude, 1.0)) ** 2))
    return np.where(magnitude > 2, large, np.floor(values))


def hash_features(frame: pd.DataFrame, columns: dict[str, str], *, hash_bits: int, seed: int) -> np.ndarray:
    """Coordinates of every row's ``field=value`` tokens, plus the bias coordinate ``2**hash_bits``.

    Each column contributes one token per row: ``"{seed}:{name}={value}"`` for a categorical
    column (values as strings: 5 and 5.0 are one value), the ``discretize`` bucket for a numeric
    one, and ``"{seed}:{name}=\\0"`` (a token of its own) when the value is missing. Tokens are
    hashed with ``recfunnel.data.columns.hash_values`` (SipHash with a fixed key, so identical in
    every process) into ``[0, 2**hash_bits)``; the seed salts the hash, as Vowpal Wabbit's hash_seed.

    Returns:
        int64 array of shape (B, F + 1): column f of ``columns`` in place f, the bias last.

    Example:
        >>> frame = pd.DataFrame({"item": ["a", "b", "a", None], "price": [1.0, 50.0, 1.0, 3.0]})
        >>> coords = hash_features(frame, {"item": "categorical", "price": "numeric"}, hash_bits=20, seed=0)
        >>> coords.shape, bool(coords[0, 0] == coords[2, 0]), bool(coords[0, 0] != coords[3, 0])
        ((4, 3), True, True)
    """
    coordinates = np.empty((len(frame), len(columns) + 1), dtype=np.int64)
    for f, (name, kind) in enumerate(columns.items()):
        coordinates[:, f] = _hash_column(frame[name], name, kind, 2**hash_bits, seed)
    coordinates[:, -1] = 2**hash_bits
    return coordinates


def _hash_column(column: pd.Series, name: str, kind: str, buckets: int, seed: int) -> np.ndarray:
    """Coordinates of one column's tokens, shape (B,); only its distinct values are turned into strings."""
    if kind == "numeric":
        codes, buckets_seen = pd.factorize(discretize(numeric_column(name, column)))  # NaN gets code -1
        words = strings(pd.Series(buckets_seen))
    else:
        codes, uniques = pd.factorize(column)
        words = strings(pd.Series(uniques))  # 5 and 5.0 both "5"; "" becomes null, i.e. missing
    prefix, empty = pa.scalar(f"{seed}:{name}=", pa.large_string()), pa.scalar("", pa.large_string())
    tokens = pc.binary_join_element_wise(prefix, words, empty)  # null stays null
    missing = int(hash_values(pa.array([f"{seed}:{name}=\0"], pa.large_string()), buckets, 0)[0])
    table = hash_values(tokens, buckets, missing)  # (U,), counted from 2
    return np.append(table, missing)[codes] - 2  # code -1 (missing) picks the trailing `missing`


def infer_columns(frame: pd.DataFrame, columns: list[str] | dict[str, str] | None, label: str) -> dict[str, str]:
    """Feature columns and their kinds: given ones, or inferred from dtypes (float: numeric, else categorical).

    Example:
        >>> infer_columns(pd.DataFrame({"id": [1], "price": [2.5], "y": [0]}), None, "y")
        {'id': 'categorical', 'price': 'numeric'}
    """
    if isinstance(columns, dict):
        bad = {name: kind for name, kind in columns.items() if kind not in KINDS}
        if bad:
            raise ConfigError(f"column kinds must be 'categorical' or 'numeric'; got {bad}.")
        chosen = dict(columns)
    else:
        names = [str(c) for c in frame.columns if c != label] if columns is None else list(columns)
        _check_present(frame, names)
        chosen = {name: "numeric" if pd.api.types.is_float_dtype(frame[name]) else "categorical" for name in names}
    if label in chosen or not chosen:
        raise ConfigError(f"the features must be at least one column other than the label {label!r}; "
                          f"got {list(chosen)}.")
    return chosen


def _check_present(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise SchemaError(f"column(s) {', '.join(map(repr, missing))} missing; columns present: "
                          f"{', '.join(map(str, frame.columns))}.")


def binary_labels(frame: pd.DataFrame, label: str) -> np.ndarray:
    """The label column as float64 0/1, shape (B,); a missing column or another value raises a SchemaError.

    Example:
        >>> binary_labels(pd.DataFrame({"click": [1, 0, True]}), "click").tolist()
        [1.0, 0.0, 1.0]
    """
    _check_present(frame, [label])
    values = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        first = frame[label].iloc[int(bad.argmax()):].head(1).tolist()[0]  # a Python value, for its repr
        raise SchemaError(f"label {label!r} must hold only 0 and 1 (FTRLRanker is a binary classifier); "
                          f"{int(bad.sum())} row(s) hold other values, first {first!r}.")
    return values


@register_estimator("ftrl", kind="ranking")
class FTRLRanker:
    """Click model trained online: FTRL-proximal logistic regression on hashed features (McMahan et al., 2013).

    Every feature column is turned into one ``field=value`` token per row (numbers first go to
    Criteo-style log buckets, see ``discretize``; a missing value is a token of its own), hashed
    into ``2**hash_bits`` coordinates plus a bias, and scored by one weight per coordinate,
    learnt with per-coordinate learning rates and L1/L2 (``recfunnel.train.ftrl_proximal.FTRLProximal``).
    Nothing is fitted before training (no vocabulary, no statistics), so ``partial_fit`` can
    learn from a stream, and ``fit`` reads a file in chunks of ``chunk_rows``: memory is the
    weights (16 bytes per coordinate: 64 MiB at 22 bits) plus one chunk, whatever the row count.
    Mini-batches of ``batch_size`` rows are consecutive slices of a chunk, so with ``chunk_rows``
    a multiple of ``batch_size`` a file and the same rows as one DataFrame give identical weights.

    Args:
        label: Binary label column; may be omitted for Criteo-layout data, whose label is "label".
        columns: Feature columns: a list (kinds from the first chunk: float columns are numeric,
            all others categorical), a dict ``{name: "categorical" | "numeric"}``, or None for all
            columns but the label.
        alpha: Learning-rate scale of FTRL (alpha in the paper).
        beta: Learning-rate smoothing of FTRL (beta).
        l1: L1 strength (lambda_1); larger gives more exact zeros.
        l2: L2 strength (lambda_2).
        hash_bits: log2 of the number of hashed coordinates.
        batch_size: Rows per FTRL step (gradients summed per coordinate within a step).
        chunk_rows: Rows read (and hashed) at a time from a file or DataFrame.
        epochs: Passes over the data in ``fit``.
        seed: Salt of the feature hash: another seed gives other collisions.
        allow_single_class: Let ``fit`` end with a warning instead of a DataError when every
            training label was 0, or every one was 1.

    Example:
        >>> from recfunnel.datasets import make_criteo_like
        >>> frame = make_criteo_like(5000, seed=0)
        >>> ranker = FTRLRanker(hash_bits=18).fit(frame)
        >>> ranker.predict(frame.head(3)).shape, ranker.rows_
        ((3,), 5000)
    """

    model_name = "ftrl"

    def __init__(self, *, label: str | None = None, columns: list[str] | dict[str, str] | None = None,
                 alpha: float = 0.1, beta: float = 1.0, l1: float = 1.0, l2: float = 1.0, hash_bits: int = 22,
                 batch_size: int = 4096, chunk_rows: int = 65_536, epochs: int = 1, seed: int = 2026,
                 allow_single_class: bool = False) -> None:
        for name, value, low, high in (("hash_bits", hash_bits, 1, 30), ("batch_size", batch_size, 1, None),
                                       ("chunk_rows", chunk_rows, 1, None), ("epochs", epochs, 1, None),
                                       ("seed", seed, 0, None)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise ConfigError(f"FTRLRanker {name} must be an int in [{low}, {high or 'inf'}]; got {value!r}.")
        check_hyperparameters(2**hash_bits + 1, alpha=alpha, beta=beta, l1=l1, l2=l2)
        if columns is not None and not isinstance(columns, (list, tuple, dict)):
            raise ConfigError(f"columns must be a list of names or a dict name -> 'categorical' | 'numeric'; "
                              f"got {columns!r}.")
        self.label = label
        self.columns = dict(columns) if isinstance(columns, dict) else None if columns is None else list(columns)
        self.alpha, self.beta, self.l1, self.l2 = alpha, beta, l1, l2
        self.hash_bits, self.batch_size, self.chunk_rows, self.epochs, self.seed = (
            hash_bits, batch_size, chunk_rows, epochs, seed)
        self.allow_single_class = check_bool("allow_single_class", allow_single_class)
        self.model_: FTRLProximal | None = None
        self.label_: str | None = None
        self.columns_: dict[str, str] = {}
        self.rows_ = 0
        self.metrics_: dict[str, Any] = {}
        self._progressive = [0.0, 0]  # summed log loss before each step, and its rows
        self._positives = 0  # rows with label 1, to tell a single-class training set in ``fit``

    @property
    def history_(self) -> list[dict[str, float]]:
        """Empty: FTRL learns in streaming passes, with no per-epoch validation history."""
        return []

    def params(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able, as saved in ``config.json``."""
        return {"label": self.label, "columns": self.columns, "alpha": self.alpha, "beta": self.beta,
                "l1": self.l1, "l2": self.l2, "hash_bits": self.hash_bits, "batch_size": self.batch_size,
                "chunk_rows": self.chunk_rows, "epochs": self.epochs, "seed": self.seed,
                "allow_single_class": self.allow_single_class}

    # -- training -------------------------------------------------------------------------------
    def partial_fit(self, frame: pd.DataFrame) -> FTRLRanker:
        """One online pass over ``frame`` in mini-batches of ``batch_size``; the first call sets label and columns.

        Raises:
            ConfigError: No label was given and the data is not Criteo-layout.
            SchemaError: The label or a feature column is missing, the label is not 0/1, or a column
                name appears more than once.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"partial_fit expects a pandas DataFrame chunk; got {type(frame).__name__}. "
                            "Use fit(path) to stream a file.")
        check_frame_columns(frame)
        if self.model_ is None:
            self._start(frame)
        model, label = self._fitted()
        labels = binary_labels(frame, label)
        coordinates = self.features(frame)  # (B, F + 1)
        for start in range(0, len(frame), self.batch_size):  # a loop over batches, not rows
            stop = start + self.batch_size
            logits = model.update(coordinates[start:stop], None, labels[start:stop])
            self._progressive[0] += float(np.sum(np.logaddexp(0.0, logits) - labels[start:stop] * logits))
        self._progressive[1] += len(frame)
        self._positives += int(labels.sum())
        self.rows_ += len(frame)
        return self

    def _start(self, frame: pd.DataFrame) -> None:
        label = self.label
        if label is None:
            if list(frame.columns[:len(CRITEO_COLUMNS)]) != CRITEO_COLUMNS:
                raise ConfigError("no label column given; pass label='click' (only Criteo-layout data, "
                                  "whose first column is 'label', needs none).")
            label = "label"
        _check_present(frame, [label])
        self.columns_ = infer_columns(frame, self.columns, label)
        self.label_ = label
        self.model_ = FTRLProximal(2**self.hash_bits + 1, alpha=self.alpha, beta=self.beta, l1=self.l1,
                                   l2=self.l2)

    def fit(self, train: Data, valid: Data | None = None, *, fmt: str | None = None) -> FTRLRanker:
        """Train from scratch: ``epochs`` streaming passes over ``train``, then score ``valid``.

        Args:
            train: A DataFrame, or a CSV/TSV (header), Parquet or raw Criteo file, plain or gzipped,
                read ``chunk_rows`` at a time (``recfunnel.data.stream.iter_chunks``).
            valid: Optional held-out data; its AUC and log loss go to ``metrics_["valid"]``.
            fmt: "csv", "tsv", "parquet" or "criteo" for files; detected from the file when None.

        Raises:
            DataError: A file is missing, unreadable or malformed, or every training label was the
                same (unless ``allow_single_class``; the pass over the data has then already run).
        """
        self.model_, self.label_, self.columns_, self.rows_, self._progressive = None, None, {}, 0, [0.0, 0]
        self._positives = 0
        for _ in range(self.epochs):
            for chunk in self._chunks(train, fmt):
                self.partial_fit(chunk)
        seen = [value for value, present in ((0, self._positives < self.rows_), (1, self._positives > 0)) if present]
        try:
            check_two_classes(self._fitted()[1], seen, allow=self.allow_single_class)
        except DataError:
            self.model_ = None  # not fitted: a constant model is only kept when asked for
            raise
        self.metrics_ = {"train": {"progressive_logloss": self._progressive[0] / max(self._progressive[1], 1),
                                   "rows": self.rows_}}
        if valid is not None:
            self.metrics_["valid"] = self.evaluate(valid, fmt=fmt)
        return self

    def _chunks(self, data: Data, fmt: str | None, *, labels: bool = True) -> Iterator[pd.DataFrame]:
        """``data`` in DataFrames of ``chunk_rows`` rows; of a file only the feature (and label) columns are read."""
        if isinstance(data, pd.DataFrame):
            if len(data) == 0:
                raise DataError("the DataFrame has no rows.")
            check_frame_columns(data)
            for start in range(0, len(data), self.chunk_rows):
                yield data.iloc[start:start + self.chunk_rows]
            return
        if not isinstance(data, (str, Path)):
            raise TypeError(f"expected a path or a pandas DataFrame; got {type(data).__name__}.")
        if self.label_ is None:  # the first chunk fixes label and column kinds; then every chunk parses alike
            self._start(next(iter_chunks(data, chunk_rows=self.chunk_rows, fmt=fmt)))
        dtype = {name: "str" if kind == "categorical" else "float64" for name, kind in self.columns_.items()}
        names = [*self.columns_, *([self.label_] if labels and self.label_ else [])]
        yield from iter_chunks(data, chunk_rows=self.chunk_rows, fmt=fmt, columns=names, dtype=dtype)

    # -- inference ------------------------------------------------------------------------------
    def _fitted(self) -> tuple[FTRLProximal, str]:
        if self.model_ is None or self.label_ is None:
            raise NotFittedError("This FTRLRanker is not fitted yet; call fit(...), partial_fit(...) or "
                                 "recfunnel.load(path) first.")
        return self.model_, self.label_

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """The (B, F + 1) hashed coordinates of a frame's rows (see ``hash_features``)."""
        self._fitted()
        _check_present(frame, list(self.columns_))
        return hash_features(frame, self.columns_, hash_bits=self.hash_bits, seed=self.seed)

    @property
    def feature_names_(self) -> list[str]:
        """The input columns that are hashed into features."""
        self._fitted()
        return list(self.columns_)

    def predict(self, data: Data, *, fmt: str | None = None) -> np.ndarray:
        """Click probabilities for every row, shape (N,); files are read in chunks."""
        model = self._fitted()[0]
        parts = [sigmoid(model.predict_logits(self.features(chunk))) for chunk in self._chunks(data, fmt, labels=False)]
        return np.concatenate(parts)

    def evaluate(self, data: Data, *, fmt: str | None = None) -> dict[str, float]:
        """AUC and log loss on labelled data (``recfunnel.metrics``); files are read in chunks."""
        model, label = self._fitted()
        labels, probabilities = [], []
        for chunk in self._chunks(data, fmt):
            labels.append(binary_labels(chunk, label))
            probabilities.append(sigmoid(model.predict_logits(self.features(chunk))))
        y, p = np.concatenate(labels), np.concatenate(probabilities)
        return {"auc": auc(y, p), "logloss": logloss(y, p)}

    # -- driven by a config (the CLI) ------------------------------------------------------------
    data_files: ClassVar[tuple[str, ...]] = DATA_FILES

    def fit_data(self, data: Mapping[str, Any]) -> FTRLRanker:
        """Fit from a config's data section, streaming its files chunk by chunk."""
        return self.fit(data["train"], data.get("valid"), fmt=data.get("format"))

    def evaluate_file(self, path: str | Path, *, fmt: str | None = None, exclude: Sequence[str] = (),
                      ks: tuple[int, ...] | None = None) -> dict[str, Any]:
        """``evaluate`` streaming a file: it need not fit in memory."""
        ignore_list_options("FTRL", exclude, ks)
        return self.evaluate(path, fmt=fmt)

    def report(self) -> list[Report]:
        """The validation metrics."""
        return metrics_report("ftrl validation", self.metrics_.get("valid", {}))

    @property
    def sparsity_(self) -> dict[str, float]:
        """Touched coordinates and non-zero weights: counts and shares (see ``FTRLProximal.sparsity``)."""
        return self._fitted()[0].sparsity()

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write an artifact directory: z and n of the touched coordinates in ``model.safetensors``, JSON beside.

        ``config.json`` has ``"estimator": "ftrl"``, the parameters, label and column kinds;
        ``encoder.json`` describes the hashing and ``schema.json`` the columns (as hashed
        Categorical features). Untouched coordinates (n = 0, hence z = 0) are not stored.
        """
        model, label = self._fitted()
        touched = np.flatnonzero(model.n)
        weights = {"index": torch.from_numpy(touched), "z": torch.from_numpy(model.z[touched]),
                   "n": torch.from_numpy(model.n[touched])}
        config = {"estimator": "ftrl", "params": self.params(), "label": label, "columns": self.columns_,
                  "rows": self.rows_, "recfunnel_version": recfunnel.__version__}
        encoder = {"kind": "ftrl-hashing", "hash_bits": self.hash_bits, "seed": self.seed, "columns": self.columns_,
                   "numeric": "discretize: floor(x) if |x| <= 2 else sign(x) * (3 + floor(log|x|**2))"}
        schema = Schema(*(Categorical(name, hash_buckets=2**self.hash_bits) for name in self.columns_),
                        Label(label))
        valid = self.metrics_.get("valid", {})
        card = model_card(model="ftrl", params=self.params(), task={"kind": "binary", "label": label},
                          rows={"train": self.rows_}, metrics={f"valid {k}": v for k, v in valid.items()},
                          features=list(self.columns_))
        return write_artifact(path, config=config, schema=schema.to_dict(), encoder=encoder, weights=weights,
                              metrics={**self.metrics_, "sparsity": model.sparsity()}, card=card)


def load_ftrl(path: str | Path, parts: dict[str, Any]) -> FTRLRanker:
    """Rebuild an FTRLRanker from its artifact directory (``parts`` from ``read_artifact``); no pickle.

    Raises:
        ArtifactError: The config or the weights are missing or inconsistent.
    """
    with inconsistent(path, kind="FTRL artifact"):
        config, weights = parts["config"], parts["weights"]
        ranker = FTRLRanker(**config["params"])
        index = weights["index"].numpy()
        model = FTRLProximal(2**ranker.hash_bits + 1, alpha=ranker.alpha, beta=ranker.beta, l1=ranker.l1,
                             l2=ranker.l2)
        model.z[index], model.n[index] = weights["z"].numpy(), weights["n"].numpy()
        ranker.columns_ = {str(name): str(kind) for name, kind in config["columns"].items()}
        ranker.label_, ranker.rows_ = str(config["label"]), int(config["rows"])
    ranker.model_ = model
    ranker.metrics_ = {k: v for k, v in parts["metrics"].items() if k != "sparsity"}
    return ranker
