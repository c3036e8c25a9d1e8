"""Schema inference: a first Schema from a DataFrame's dtypes, by simple and predictable rules."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings

import numpy as np
import pandas as pd

from recfunnel.errors import SchemaError, did_you_mean
from recfunnel.schema.schema import Schema
from recfunnel.schema.specs import Categorical, Label, MultiCategorical, Numeric, Spec

USER_NAMES = ("user_id", "user", "uid")
ITEM_NAMES = ("item_id", "item", "movie_id", "iid")
MAX_BAG_LEN = 50
SMALL_BAG = 16  # bags up to this long are kept whole; beyond it the 95th percentile bounds max_len
TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime", "unix_time")
TIME_SUFFIXES = ("_time", "_ts", "_at", "_timestamp", "_date")
SHOWN_FIELDS = {  # always shown by describe_schema; other fields only when not at their default
    "Categorical": ("role",),
    "MultiCategorical": ("max_len", "sep", "pooling", "role"),
    "Sequence": ("max_len", "shares", "role"),
    "Numeric": ("transform", "role"),
    "Label": ("kind",),
}


def infer_schema(
    frame: pd.DataFrame,
    label: str | list[str],
    *,
    multi_sep: str = "|",
    exclude: tuple[str, ...] | list[str] = (),
) -> Schema:
    """Infer a Schema from column dtypes.

    Rules, applied to each column in order:

    * a label column becomes ``Label(kind="binary")`` when all its non-null values are 0 or 1,
      otherwise ``Label(kind="regression")``;
    * a float column becomes ``Numeric(transform="standardize")``;
    * an integer column named like a time (timestamp, time, ts, date, ``*_at``, ``*_time``, ...)
      becomes ``Numeric``; another integer, bool or categorical column becomes ``Categorical``,
      with a warning when nearly every row holds its own value;
    * a string/object column becomes ``MultiCategorical`` when more than half of its non-null
      cells are lists or contain ``multi_sep`` (``max_len`` = the longest bag when it has at most
      16 values, else the 95th percentile of bag sizes, clipped to [1, 50]), otherwise ``Categorical``;
    * columns named user_id/user/uid get role "user", item_id/item/movie_id/iid role "item".

    Args:
        frame: Training data.
        label: Name of the label column, or a list of names for multi-task data.
        multi_sep: Separator of multi-valued string cells.
        exclude: Columns to leave out (for example raw timestamps, which would otherwise be
            inferred as a Categorical because they are integers).

    Returns:
        The inferred Schema: features in column order, then labels in the given order.

    Raises:
        SchemaError: A label column is missing or not numeric, or a feature column has a dtype
            with no rule (datetime, complex, ...) and is not excluded.

    Example:
        >>> frame = pd.DataFrame({"user_id": [1, 2], "genres": ["a|b", "c|d|e"],
        ...                       "age": [0.5, 1.5], "click": [0, 1]})
        >>> [type(s).__name__ for s in infer_schema(frame, "click")]
        ['Categorical', 'MultiCategorical', 'Numeric', 'Label']
    """
    labels = [label] if isinstance(label, str) else list(label)
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    _check_columns(frame, labels, exclude)
    skipped = set(labels) | set(exclude)
    features = [_infer_feature(name, frame[name], multi_sep) for name in frame.columns if name not in skipped]
    return Schema(*features, *(_infer_label(name, frame[name]) for name in labels))


def _check_columns(frame: pd.DataFrame, labels: list[str], exclude: tuple[str, ...] | list[str]) -> None:
    columns = [str(c) for c in frame.columns]
    for what, names in (("label column", labels), ("excluded column", exclude)):
        for name in names:
            if name not in frame.columns:
                raise SchemaError(
                    f"{what} {name!r} is missing{did_you_mean(name, columns)}; "
                    f"columns present: {', '.join(columns)}."
                )


def _role(name: str) -> str | None:
    lowered = name.lower()
    return "user" if lowered in USER_NAMES else "item" if lowered in ITEM_NAMES else None


def _infer_label(name: str, column: pd.Series) -> Label:
    values = column.dropna()
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise SchemaError(
            f"label column {name!r} has dtype {column.dtype}; a label must be numeric (0/1 for "
            f"binary, any real for regression). Map it to numbers first, e.g. (frame[{name!r}] == 'yes').astype(int)."
        )
    binary = bool(values.isin([0, 1]).all())
    if not binary and bool(values.isin([0, 1]).mean() > 0.9):
        odd = values[~values.isin([0, 1])].unique()[:5].tolist()
        warnings.warn(
            f"label column {name!r} is almost all 0/1 but also holds {odd}; it is treated as a regression "
            f"target. Fix those rows, or declare Label({name!r}, kind='regression') to silence this.",
            stacklevel=3,
        )
    return Label(name, kind="binary" if binary else "regression")


def _infer_feature(name: str, column: pd.Series, multi_sep: str) -> Spec:
    role = _role(str(name))
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return Categorical(name, role=role)
    if pd.api.types.is_float_dtype(dtype) or (pd.api.types.is_integer_dtype(dtype) and _is_time(str(name))):
        return Numeric(name, transform="standardize", role=role)  # a Unix time is a number, not an id
    if pd.api.types.is_integer_dtype(dtype):
        return _categorical(name, column, role)
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        sizes = _bag_sizes(column.dropna(), multi_sep)
        if sizes is not None:
            longest = int(sizes.max(initial=1))
            bound = longest if longest <= SMALL_BAG else math.ceil(np.percentile(sizes, 95))
            max_len = int(min(max(bound, 1), MAX_BAG_LEN))
            return MultiCategorical(name, max_len=max_len, sep=multi_sep, role=role)
        return _categorical(name, column, role)
    raise SchemaError(
        f"column {name!r} has dtype {dtype}, which infer_schema has no rule for; convert it "
        f"(e.g. datetimes to numbers) or pass exclude=[{name!r}]."
    )


def _is_time(name: str) -> bool:
    lowered = name.lower()
    return lowered in TIME_NAMES or lowered.endswith(TIME_SUFFIXES)


def _categorical(name: str, column: pd.Series, role: str | None) -> Categorical:
    """A Categorical, with a warning when nearly every row holds its own value (an id or a
    measurement mistaken for a category, whose embedding can learn nothing)."""
    distinct = int(column.nunique())
    if role is None and len(column) >= 100 and distinct > 0.5 * len(column):
        warnings.warn(f"column {name!r} became a Categorical with {distinct:,} distinct values in {len(column):,} "
                      f"rows, nearly one per row; if it is a number or a time, pass it as a float column, or "
                      f"exclude it.", UserWarning, stacklevel=4)
    return Categorical(name, role=role)


def _bag_sizes(values: pd.Series, sep: str) -> np.ndarray | None:
    """Bag sizes of a multi-valued column's non-null cells, or None when at most half are bags."""
    is_list = values.map(lambda v: isinstance(v, (list, tuple, np.ndarray))).to_numpy(dtype=bool)
    text = values[~is_list].astype(str)
    has_sep = text.str.contains(sep, regex=False).to_numpy(dtype=bool)
    if 2 * (int(is_list.sum()) + int(has_sep.sum())) <= len(values):
        return None
    list_sizes = values[is_list].map(len).to_numpy(dtype=np.int64)
    text_sizes = text.str.count(re.escape(sep)).to_numpy(dtype=np.int64) + 1
    return np.concatenate([list_sizes, text_sizes])


def describe_schema(schema: Schema) -> list[tuple[str, str, str]]:
    """Rows (name, type, details) describing each spec, for printing as a table.

    Args:
        schema: Any Schema.

    Returns:
        One row per spec in schema order; details lists the key options of the spec's type
        and any other option that differs from its default, as ``key=value`` pairs.

    Example:
        >>> describe_schema(Schema(Categorical("user_id", role="user"), Label("click")))
        [('user_id', 'Categorical', 'role=user'), ('click', 'Label', 'kind=binary')]
    """
    rows = []
    for spec in schema:
        kind = type(spec).__name__
        shown = SHOWN_FIELDS.get(kind, ())
        details = []
        for field in dataclasses.fields(spec):
            value = getattr(spec, field.name)
            if field.name == "name" or value is None or value == ():
                continue
            if field.name in shown or value != field.default:
                details.append(f"{field.name}={value!r}" if field.name == "sep" else f"{field.name}={value}")
        rows.append((spec.name, kind, ", ".join(details)))
    return rows


__all__ = ["infer_schema", "describe_schema"]
