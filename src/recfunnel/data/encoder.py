"""FeatureEncoder: raw frame columns to index and float tensors, fitted on training data only."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from recfunnel.data.batch import Batch
from recfunnel.data.columns import (
    DROP,
    Moments,
    ValueCounter,
    encode_label,
    flatten,
    hash_values,
    moments,
    numeric_column,
    numeric_transform,
    stats_of,
    strings,
    vocabulary_of,
)
from recfunnel.errors import ConfigError, DataError, NotFittedError, SchemaError
from recfunnel.schema.schema import Schema
from recfunnel.schema.specs import Categorical, MultiCategorical, Numeric, Sequence

ENCODER_FORMAT = "recfunnel-encoder/1"
PAD, OOV = 0, 1
_ON_NAN = ("mean", "error")
IdFeature = Categorical | MultiCategorical | Sequence
#: (value counts per column, numeric moments per column, rows) -> the same, put together with other passes'
Merge = Callable[[dict[str, pa.Table], dict[str, Moments], int], tuple[dict[str, pa.Table], dict[str, Moments], int]]


#: True inside ``quiet_nan()``: NaN values are filled as usual, without the warning (per thread).
QUIET_NAN: contextvars.ContextVar[bool] = contextvars.ContextVar("recfunnel_quiet_nan", default=False)


@contextlib.contextmanager
def quiet_nan() -> Iterator[None]:
    """Encode without the missing-value warning in this thread (for callers that leave values
    missing on purpose, as the funnel's rank stage does for unknown context and explanations).

    Example:
        >>> with quiet_nan():
        ...     QUIET_NAN.get()
        True
    """
    token = QUIET_NAN.set(True)
    try:
        yield
    finally:
        QUIET_NAN.reset(token)


#: Inside ``nan_once()``: the columns whose missing values were reported already (per thread).
NAN_SEEN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("recfunnel_nan_seen", default=None)


@contextlib.contextmanager
def nan_once() -> Iterator[None]:
    """Report a Numeric column's missing values once, at the first chunk holding any, however
    many chunks (and epochs) a stream encodes meanwhile: one warning per column, not one per
    chunk. Missing values are filled as usual; ``on_nan="error"`` still fails at the first.

    Example:
        >>> import warnings
        >>> from recfunnel.schema import Numeric, Schema
        >>> encoder = FeatureEncoder(Schema(Numeric("x"))).fit(pd.DataFrame({"x": [1.0, 2.0]}))
        >>> with warnings.catch_warnings(record=True) as caught, nan_once():
        ...     warnings.simplefilter("always")
        ...     for _ in range(3):
        ...         _ = encoder.transform(pd.DataFrame({"x": [None, 1.0]}))
        >>> len(caught)
        1
    """
    token = NAN_SEEN.set(set())
    try:
        yield
    finally:
        NAN_SEEN.reset(token)


class FeatureEncoder:
    """Learns vocabularies and numeric statistics, then turns frames into a :class:`Batch`.

    Index 0 is padding and 1 is out-of-vocabulary; known values start at 2, ordered by
    descending training frequency, then by value. Values are compared as strings, so 5 and "5"
    are one value (integral floats are written as ints, because a NaN turns an int column into
    floats). Hashed features (``hash_buckets=N``) map to ``2 + stable_hash(value) % N``.

    Args:
        schema: The features and labels to encode.
        on_nan: What a NaN in a Numeric column becomes at transform: "mean" fills it with the
            training mean and warns; "error" raises a SchemaError.

    Raises:
        SchemaError: If ``schema`` is not a Schema.
        ConfigError: If ``on_nan`` is not "mean" or "error".

    Example:
        >>> import pandas as pd
        >>> from recfunnel.schema.specs import Categorical, Label, Numeric
        >>> schema = Schema(Categorical("item_id"), Numeric("age"), Label("click"))
        >>> train = pd.DataFrame({"item_id": ["a", "b", "a", "c"], "age": [1.0, 3.0, 1.0, 3.0],
        ...                       "click": [1, 0, 1, 0]})
        >>> encoder = FeatureEncoder(schema).fit(train)
        >>> encoder.vocabulary("item_id"), encoder.schema_.vocab_size("item_id")
        (['a', 'b', 'c'], 5)
        >>> batch = encoder.transform(pd.DataFrame({"item_id": ["b", "zzz"], "age": [3.0, 2.0]}),
        ...                           labels=False)
        >>> batch.features["item_id"].tolist(), batch.features["age"].tolist()
        ([3, 1], [1.0, 0.0])
    """

    def __init__(self, schema: Schema, *, on_nan: str = "mean") -> None:
        if not isinstance(schema, Schema):
            raise SchemaError(f"FeatureEncoder needs a Schema; got {type(schema).__name__}.")
        if on_nan not in _ON_NAN:
            raise ConfigError(f"on_nan={on_nan!r} is not valid; expected one of {list(_ON_NAN)}.")
        self.schema = schema
        self.on_nan = on_nan
        self.warn_nan = True  # callers that fill missing values on purpose (the funnel) turn the warning off
        self._vocab: dict[str, np.ndarray] = {}
        self._lookup: dict[str, pa.Array] = {}
        self._stats: dict[str, tuple[float, float]] = {}
        self._fitted_schema: Schema | None = None

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``from_dict``) has run."""
        return self._fitted_schema is not None

    @property
    def schema_(self) -> Schema:
        """The schema with ``vocab_size`` filled for every non-shared id feature."""
        return self._check_fitted()

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        """Learn vocabularies and numeric statistics from training rows (label columns are not read).

        Returns:
            self, fitted.

        Raises:
            DataError: If ``frame`` is not a DataFrame or has no rows.
            SchemaError: If an input column is missing or a Numeric column holds non-numbers.
        """
        _check_frame(frame, "fit")
        return self.fit_chunks([frame])

    def fit_chunks(self, frames: Iterable[pd.DataFrame], *, merge: Merge | None = None) -> FeatureEncoder:
        """``fit`` over training rows read in chunks (e.g. ``iter_chunks`` of files larger than
        memory): only each column's value counts and numeric moments are kept between chunks, so
        the result equals ``fit`` of the chunks put together (``rows_seen_`` counts their rows).

        ``merge`` puts this pass's counts, moments and rows together with other processes' (each
        read its own parts: ``distributed.merge_fit``), so every process fits the same encoder.
        """
        counts: dict[str, ValueCounter] = {}
        found: dict[str, Moments] = {}
        rows = 0
        for frame in frames:
            _check_frame(frame, "fit")
            self._check_columns(frame, labels=False)
            rows += len(frame)
            for spec in self.schema.inputs:
                column = frame[spec.name]
                if isinstance(spec, Numeric):
                    found[spec.name] = moments(spec, column, found.get(spec.name, (0, 0.0, 0.0)))
                elif _has_vocabulary(spec):
                    values = strings(column) if isinstance(spec, Categorical) else flatten(column, spec.sep)[1]
                    counts.setdefault(spec.name, ValueCounter()).add(values)
        tables = {name: counter.table() for name, counter in counts.items()}
        if merge is not None:
            tables, found, rows = merge(tables, found, rows)
        if rows == 0:
            raise DataError("cannot fit a FeatureEncoder on an empty frame (0 rows); pass the training rows.")
        vocab = {spec.name: vocabulary_of(tables[spec.name], spec.min_count)
                 for spec in self.schema.inputs if not isinstance(spec, Numeric) and spec.name in tables}
        stats = {spec.name: stats_of(spec, found.get(spec.name, (0, 0.0, 0.0)))
                 for spec in self.schema.inputs if isinstance(spec, Numeric)}
        self._set_state(vocab, stats)
        self.rows_seen_ = rows
        return self

    def fit_transform(self, frame: pd.DataFrame, *, labels: bool = True) -> Batch:
        """``fit(frame)`` then ``transform(frame, labels=labels)``."""
        self.fit(frame)
        return self._transform(frame, labels=labels, stacklevel=3)

    def _set_state(self, vocab: dict[str, np.ndarray], stats: dict[str, tuple[float, float]]) -> None:
        self._vocab = vocab
        self._lookup = {name: pa.array(values, type=pa.large_string()) for name, values in vocab.items()}
        self._stats = stats
        specs = []
        for spec in self.schema.specs:
            if isinstance(spec, IdFeature) and _owner(self.schema, spec) is spec:
                size = spec.hash_buckets + 2 if spec.hash_buckets else len(vocab[spec.name]) + 2
                spec = dataclasses.replace(spec, vocab_size=size)
            specs.append(spec)
        self._fitted_schema = Schema(*specs)

    def transform(self, frame: pd.DataFrame, *, labels: bool = True) -> Batch:
        """Encode rows (extra columns ignored); ``labels=False`` neither needs nor reads label columns.

        Returns:
            Batch: features in schema order (Categorical int64 (B,), MultiCategorical and Sequence
            int64 (B, L), Numeric float32 (B,), or int64 (B,) when bucketized); labels float32 (B,).

        Raises:
            NotFittedError: If called before ``fit``.
            SchemaError: On missing columns, bad values, unseen values with ``oov="error"``, or NaN
                with ``on_nan="error"``.
        """
        return self._transform(frame, labels=labels, stacklevel=3)

    def _transform(self, frame: pd.DataFrame, *, labels: bool, stacklevel: int) -> Batch:
        self._check_fitted()
        _check_frame(frame, "transform")
        self._check_columns(frame, labels=labels)
        features: dict[str, torch.Tensor] = {}
        for spec in self.schema.inputs:
            column = frame[spec.name]
            if isinstance(spec, Numeric):
                out = self._encode_numeric(spec, column, stacklevel + 1)
            elif isinstance(spec, Categorical):
                out = self._encode_values(spec, strings(column), missing=OOV)
            else:
                out = self._encode_lists(spec, column)
            features[spec.name] = torch.from_numpy(out)
        label_specs = self.schema.labels if labels else ()
        targets = {s.name: torch.from_numpy(encode_label(s, frame[s.name])) for s in label_specs}
        return Batch(features, targets)

    def _encode_values(self, spec: IdFeature, values: pa.Array, *, missing: int) -> np.ndarray:
        """Indices (n,) of string values; null (missing) values become ``missing``."""
        owner = _owner(self.schema, spec)
        if owner.hash_buckets:
            return hash_values(values, owner.hash_buckets, missing)
        found = pc.fill_null(pc.index_in(values, value_set=self._lookup[owner.name]), -1).to_numpy()
        out = np.where(found >= 0, found + 2, OOV).astype(np.int64)
        null = values.is_null().to_numpy(zero_copy_only=False)
        unseen = (found < 0) & ~null
        if owner.oov == "error" and unseen.any():
            examples = pc.unique(values.filter(pa.array(unseen)))
            raise SchemaError(
                f"feature {spec.name!r} has {int(unseen.sum())} value(s) ({len(examples)} distinct) not in the "
                f"vocabulary learned by fit, e.g. {examples[:5].to_pylist()}; refit the encoder on data that "
                f"includes them, or set oov='oov' on {owner.name!r} to map unseen values to index 1."
            )
        out[null] = missing
        return out

    def _encode_lists(self, spec: MultiCategorical | Sequence, column: pd.Series) -> np.ndarray:
        """(B, L) indices: MultiCategorical keeps the first L, right-padded; Sequence the last L, left-padded."""
        rows, flat = flatten(column, spec.sep)
        indices = self._encode_values(spec, flat, missing=DROP)
        keep = indices != DROP
        rows, indices = rows[keep], indices[keep]
        counts = np.bincount(rows, minlength=len(column))  # (B,)
        position = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]  # rank within its row
        length = spec.max_len
        if isinstance(spec, Sequence):
            position = position + length - counts[rows]  # most recent value lands in the last column
        keep = (position >= 0) & (position < length)
        out = np.zeros((len(column), length), dtype=np.int64)  # (B, L)
        out[rows[keep], position[keep]] = indices[keep]
        return out

    def _encode_numeric(self, spec: Numeric, column: pd.Series, stacklevel: int) -> np.ndarray:
        values = numeric_column(spec.name, column)
        nan = np.isnan(values)
        if nan.any():
            self._handle_nan(spec, nan, stacklevel + 1)
        if spec.transform == "bucketize":
            out = 1 + np.searchsorted(np.asarray(spec.boundaries), values, side="right")
            out[nan] = PAD
            return out.astype(np.int64)
        mean, std = self._stats[spec.name]
        values = np.where(nan, mean, numeric_transform(spec, values))
        if spec.transform != "none":
            values = (values - mean) / std
        return values.astype(np.float32)

    def _handle_nan(self, spec: Numeric, nan: np.ndarray, stacklevel: int) -> None:
        count, first = int(nan.sum()), int(np.flatnonzero(nan)[0])
        if self.on_nan == "error":
            raise SchemaError(f"column {spec.name!r} (Numeric) has {count} NaN value(s) (first at row {first}); "
                              f"fill or drop them before encoding, or use FeatureEncoder(schema, on_nan='mean').")
        if not self.warn_nan or QUIET_NAN.get():
            return
        seen, later = NAN_SEEN.get(), ""
        if seen is not None:  # a stream's chunks: the first chunk with any says so for all
            if spec.name in seen:
                return
            seen.add(spec.name)
            later = " in the first chunk of the stream holding any (reported once; every chunk's are encoded alike)"
        filled = "the padding index 0" if spec.transform == "bucketize" else "the training mean"
        warnings.warn(f"column {spec.name!r} (Numeric) has {count} NaN value(s) (first at row {first}){later}; "
                      f"encoded as {filled}. Pass on_nan='error' to fail instead.", UserWarning, stacklevel=stacklevel)

    def encode_numeric(self, name: str, values: np.ndarray) -> np.ndarray:
        """Encode raw values (N,) of one Numeric feature as ``transform`` would encode that column."""
        spec = self._check_fitted()[name]
        if not isinstance(spec, Numeric):
            raise SchemaError(f"feature {name!r} is a {type(spec).__name__}, not Numeric.")
        return self._encode_numeric(spec, pd.Series(values), stacklevel=3)

    def encode_ids(self, name: str, values: Any) -> np.ndarray:
        """Indices (int64, same length as ``values``) of raw values of id feature ``name``."""
        self._check_fitted()
        spec = self._id_spec(name)
        series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).reshape(-1))
        return self._encode_values(spec, strings(series), missing=OOV)

    def decode_ids(self, name: str, indices: Any) -> np.ndarray:
        """Raw values (object array of str) of indices of feature ``name``; 0 and 1 give None.

        Raises:
            SchemaError: If the feature is hashed (not invertible) or an index is out of range.
        """
        vocabulary = self._vocabulary_of(name)
        table = np.empty(len(vocabulary) + 2, dtype=object)  # slots 0 (padding) and 1 (OOV) stay None
        table[2:] = vocabulary
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu" and indices.size:
            raise SchemaError(f"feature {name!r}: indices to decode must be integers; got dtype {indices.dtype}.")
        bad = (indices < 0) | (indices >= len(table))
        if bad.any():
            raise SchemaError(f"feature {name!r}: cannot decode index {int(indices[bad].reshape(-1)[0])}; indices "
                              f"must be in [0, {len(table) - 1}] (vocab_size={len(table)}).")
        return table[indices.astype(np.int64)]

    def vocabulary(self, name: str) -> list[str]:
        """Raw values of feature ``name`` in index order, starting at index 2."""
        return self._vocabulary_of(name).tolist()

    def _vocabulary_of(self, name: str) -> np.ndarray:
        self._check_fitted()
        owner = _owner(self.schema, self._id_spec(name))
        if owner.hash_buckets:
            raise SchemaError(f"feature {name!r} is hashed into {owner.hash_buckets} buckets, so it has no vocabulary "
                              f"and its indices cannot be decoded; drop hash_buckets to learn a vocabulary.")
        return self._vocab[owner.name]

    def _id_spec(self, name: str) -> IdFeature:
        spec = self.schema[name]  # raises with a did-you-mean for unknown names
        if not isinstance(spec, IdFeature):
            raise SchemaError(f"feature {name!r} is a {type(spec).__name__}; only Categorical, MultiCategorical "
                              f"and Sequence features have ids.")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict holding the schema, vocabularies and numeric statistics."""
        self._check_fitted()
        return {"format": ENCODER_FORMAT, "on_nan": self.on_nan, "schema": self.schema.to_dict(),
                "vocabularies": {name: values.tolist() for name, values in self._vocab.items()},
                "numeric": {name: {"mean": mean, "std": std} for name, (mean, std) in self._stats.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from ``to_dict`` output.

        Raises:
            SchemaError: If ``data`` is not encoder output or lacks a feature's state.
        """
        if not isinstance(data, dict) or data.get("format") != ENCODER_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SchemaError(f"not a FeatureEncoder dict: expected format {ENCODER_FORMAT!r}; got {found!r}.")
        encoder = cls(Schema.from_dict(data["schema"]), on_nan=data.get("on_nan", "mean"))
        vocab, stats = {}, {}
        for spec in encoder.schema.inputs:
            try:
                if isinstance(spec, Numeric):
                    entry = data["numeric"][spec.name]
                    stats[spec.name] = (float(entry["mean"]), float(entry["std"]))
                elif _has_vocabulary(spec):
                    vocab[spec.name] = np.array([str(v) for v in data["vocabularies"][spec.name]], dtype=object)
            except (KeyError, TypeError):
                raise SchemaError(f"FeatureEncoder dict has no fitted state for feature {spec.name!r}; "
                                  f"save it again with encoder.to_dict().") from None
        encoder._set_state(vocab, stats)
        return encoder

    def _check_fitted(self) -> Schema:
        schema = self._fitted_schema
        if schema is None:
            raise NotFittedError("This FeatureEncoder is not fitted yet; call fit(frame) on training data first "
                                 "(or FeatureEncoder.from_dict(...) to load a fitted one).")
        return schema

    def _check_columns(self, frame: pd.DataFrame, *, labels: bool) -> None:
        needed = self.schema.inputs + (self.schema.labels if labels else ())
        missing = [s for s in needed if s.name not in frame.columns]
        if not missing:
            return
        names = ", ".join(f"{s.name!r} ({type(s).__name__})" for s in missing)
        present = ", ".join(str(c) for c in frame.columns[:30])
        if len(frame.columns) > 30:
            present += f", ... ({len(frame.columns) - 30} more)"
        subject = f"column {names} is" if len(missing) == 1 else f"columns {names} are"
        raise SchemaError(f"{subject} missing; columns present: {present}.")


# -- helpers (vectorized; none loops over rows) ----------------------------------------------------
def _owner(schema: Schema, spec: Any) -> Any:
    """The spec whose vocabulary, hashing and oov policy apply (the shared Categorical for a shared Sequence)."""
    return schema[spec.shares] if isinstance(spec, Sequence) and spec.shares is not None else spec


def _has_vocabulary(spec: Any) -> bool:
    shared = isinstance(spec, Sequence) and spec.shares is not None
    return isinstance(spec, IdFeature) and not shared and not spec.hash_buckets


def _check_frame(frame: Any, action: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"FeatureEncoder.{action} expects a pandas DataFrame; got {type(frame).__name__}.")
