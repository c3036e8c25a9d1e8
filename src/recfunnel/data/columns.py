"""Column-level encoding helpers of the FeatureEncoder: strings, hashing, vocabularies, numerics, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recfunnel.errors import SchemaError
from recfunnel.schema.specs import Label, Numeric

DROP = -1  # marks a missing element of a multi-valued cell; dropped before padding


def strings(values: pd.Series | pa.Array) -> pa.Array:
    """Values as Arrow large_string, null where missing (NaN, None, ""); Arrow writes 5 and 5.0 as "5"."""
    try:
        arr = values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):  # pandas' Arrow-backed strings of a frame put together from pieces
            arr = arr.combine_chunks()
        if pa.types.is_dictionary(arr.type):  # pandas categorical
            arr = arr.cast(arr.type.value_type)
        if pa.types.is_boolean(arr.type):  # as Python writes them, so True and "True" are one value
            arr = pc.if_else(arr, "True", "False")
        arr = arr.cast(pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):  # mixed Python objects
        series = pd.Series(values.to_pandas() if isinstance(values, pa.Array) else values, dtype=object)
        missing = series.isna().to_numpy()
        arr = pa.array(series.astype(str).to_numpy(dtype=object), mask=missing, type=pa.large_string())
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.large_string()), arr)


def hash_values(values: pa.Array, buckets: int, missing: int) -> np.ndarray:
    """2 + siphash(value) % buckets; pandas' fixed default key makes it identical across processes."""
    encoded = pc.dictionary_encode(values)  # hash each distinct value once
    words = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    table = (pd.util.hash_array(words, categorize=False) % np.uint64(buckets)).astype(np.int64) + 2
    codes = pc.fill_null(encoded.indices, -1).to_numpy()
    return np.append(table, np.int64(missing))[codes]  # code -1 (null) picks the trailing `missing`


def learn_vocabulary(values: pa.Array, min_count: int) -> np.ndarray:
    """Values seen at least ``min_count`` times, by descending count then value (object array of str)."""
    counter = ValueCounter()
    counter.add(values)
    return vocabulary_of(counter.table(), min_count)


class ValueCounter:
    """Each distinct non-missing value's count over values added chunk by chunk (the vocabulary
    pass over data read in chunks keeps only this).

    A chunk's counts wait until the waiting ones outnumber the merged table's rows, then all are
    merged in one group-by, so a pass hashes each distinct value a few times rather than once per
    chunk (a 1M-value vocabulary read in 150 chunks would otherwise be re-hashed 150 times).

    Example:
        >>> counter = ValueCounter()
        >>> for chunk in (["a", "b", None], ["b", "c"]):
        ...     counter.add(pa.array(chunk))
        >>> sorted(zip(*counter.table().to_pydict().values()))
        [('a', 1), ('b', 2), ('c', 1)]
    """

    def __init__(self) -> None:
        self._merged: pa.Table | None = None
        self._waiting: list[pa.Table] = []
        self._waiting_rows = 0

    def add(self, values: pa.Array) -> None:
        counts = pc.value_counts(values)
        table = pa.table({"value": counts.field("values").cast(pa.large_string()),
                          "count": counts.field("counts").cast(pa.int64())})
        self.add_counts(table.filter(pc.is_valid(table["value"])))

    def add_counts(self, table: pa.Table) -> None:
        """Add values already counted: another counter's ``table()`` (another process's pass)."""
        self._waiting.append(table)
        self._waiting_rows += len(table)
        if self._merged is None or self._waiting_rows >= len(self._merged):
            self._merge()

    def table(self) -> pa.Table:
        """(value, count) of every value added."""
        self._merge()
        assert self._merged is not None  # add was called at least once
        return self._merged

    def _merge(self) -> None:
        tables = ([self._merged] if self._merged is not None else []) + self._waiting
        if len(tables) > 1:
            merged = pa.concat_tables(tables).group_by("value").aggregate([("count", "sum")])
            self._merged = merged.rename_columns(["value", "count"])
        elif tables:
            self._merged = tables[0]
        self._waiting, self._waiting_rows = [], 0


def vocabulary_of(counts: pa.Table, min_count: int) -> np.ndarray:
    """The values of a ``ValueCounter``'s table seen at least ``min_count`` times, by descending
    count then value (object array of str)."""
    table = counts.filter(pc.greater_equal(counts["count"], min_count))
    table = table.sort_by([("count", "descending"), ("value", "ascending")])
    return table["value"].to_numpy().astype(object)


def flatten(column: pd.Series, sep: str) -> tuple[np.ndarray, pa.Array]:
    """List cells and ``sep``-joined strings as (row of each value (n,), values (n,)), in cell order."""
    try:
        cells = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # strings mixed with lists: split in pandas
        cells = column.reset_index(drop=True).astype(object)
        split = cells.str.split(sep, regex=False)  # NaN for list cells, which stay as they are
        flat = split.where(split.notna(), cells).explode()  # empty or missing cells give one NaN
        return flat.index.to_numpy(dtype=np.int64), strings(flat)
    if pa.types.is_dictionary(cells.type):
        cells = cells.cast(cells.type.value_type)
    if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
        cells = pc.split_pattern(cells, sep)
    if not (pa.types.is_list(cells.type) or pa.types.is_large_list(cells.type)):
        return np.arange(len(cells), dtype=np.int64), strings(cells)  # one value per cell
    rows = pc.list_parent_indices(cells).to_numpy().astype(np.int64)
    return rows, strings(pc.list_flatten(cells))


def numeric_column(name: str, column: pd.Series) -> np.ndarray:
    """float64 (B,) with NaN for missing; non-numbers and infinities raise a SchemaError."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & column.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SchemaError(f"column {name!r} (Numeric) holds non-numeric values, e.g. {column.iloc[row]!r} at row "
                              f"{row}; clean it (pd.to_numeric(..., errors='coerce')) or declare Categorical({name!r}).")
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise SchemaError(f"column {name!r} (Numeric) holds {int(infinite.sum())} infinite value(s) (first at row "
                          f"{row}); clip or drop them before encoding.")
    return values


def numeric_transform(spec: Numeric, values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values)) if spec.transform == "log1p" else values


def numeric_stats(spec: Numeric, column: pd.Series) -> tuple[float, float]:
    """(mean, std) of the (log1p-transformed) training values, NaN ignored; std 0 becomes 1."""
    return stats_of(spec, moments(spec, column))


Moments = tuple[int, float, float]  # (count, mean, sum of squared deviations from the mean)


def moments(spec: Numeric, column: pd.Series, earlier: Moments = (0, 0.0, 0.0)) -> Moments:
    """The (count, mean, squared deviations) of a column's (transformed) non-missing values, an
    earlier chunk's ``earlier`` merged in (Chan et al.'s pairwise update, stable in float64)."""
    values = numeric_transform(spec, numeric_column(spec.name, column))
    values = values[~np.isnan(values)].astype(np.float64)
    mean = float(values.mean()) if values.size else 0.0
    return combine_moments(earlier, (values.size, mean, float(((values - mean) ** 2).sum())))


def combine_moments(first: Moments, second: Moments) -> Moments:
    """The moments of two sets of values put together (Chan et al.'s pairwise update).

    Example:
        >>> combine_moments((2, 1.0, 2.0), (2, 3.0, 2.0))  # {0, 2} and {2, 4}
        (4, 2.0, 8.0)
    """
    total, before, spread = first
    count, mean, squares = second
    if total == 0:
        return second
    if count == 0:
        return first
    n = total + count
    delta = mean - before
    return n, before + delta * count / n, spread + squares + delta * delta * total * count / n


def stats_of(spec: Numeric, found: Moments) -> tuple[float, float]:
    """(mean, std) from ``moments``; (0, 1) for a bucketized column or no values; std 0 becomes 1."""
    count, mean, squares = found
    if spec.transform == "bucketize" or count == 0:
        return 0.0, 1.0
    std = float(np.sqrt(squares / count))
    return float(mean), (std if std > 0 else 1.0)


def examples(values: np.ndarray, k: int = 5) -> list:
    """Up to k distinct values, sorted when numeric, integral floats shown as ints."""
    uniques = pd.unique(values)
    if uniques.dtype.kind in "iufb":
        uniques = np.sort(uniques)
    return [int(v) if isinstance(v, float) and v.is_integer() else v for v in uniques[:k].tolist()]


def encode_label(spec: Label, column: pd.Series) -> np.ndarray:
    """float32 (B,) after checking 0/1 (binary) or finiteness (regression)."""
    missing = column.isna().to_numpy()
    if missing.any():
        raise SchemaError(f"label {spec.name!r} has {int(missing.sum())} missing value(s) (first at row "
                          f"{int(np.flatnonzero(missing)[0])}); drop those rows or fill them before encoding.")
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(values, (0.0, 1.0)) if spec.kind == "binary" else ~np.isfinite(values)
    if bad.any():
        found, row = examples(column.to_numpy()[bad]), int(np.flatnonzero(bad)[0])
        if spec.kind == "binary":
            raise SchemaError(
                f"label {spec.name!r} must be 0 or 1 for a binary task; found values {found} (e.g. row {row}). "
                f"Map it first, e.g. (rating >= 4).astype(int), or declare Label({spec.name!r}, kind='regression')."
            )
        raise SchemaError(f"label {spec.name!r} must hold finite numbers for a regression task; found values "
                          f"{found} (e.g. row {row}). Drop or fix those rows first.")
    return values.astype(np.float32)
