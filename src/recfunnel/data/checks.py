"""Input checks shared by the readers and the estimators: unique column names, two-class binary labels."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from recfunnel.errors import ConfigError, DataError, SchemaError

MANGLED = re.compile(r".\.\d+$")  # pandas renames a repeated header name "price" to "price.1", "price.2", ...


def check_unique_columns(names: Iterable[Any], source: str = "the DataFrame") -> None:
    """Raise a SchemaError when a column name appears more than once.

    Args:
        names: Column names in order (a DataFrame's columns, a file's header fields).
        source: Where they come from, for the message: a quoted path or "the DataFrame".

    Raises:
        SchemaError: Some names repeat; the message lists each of them once.

    Example:
        >>> check_unique_columns(["user_id", "price", "price"], "'train.csv'")
        Traceback (most recent call last):
        ...
        recfunnel.errors.SchemaError: column 'price' appears more than once in 'train.csv'; rename the \
repeated columns so that every column has a name of its own.
    """
    repeated = [str(name) for name, count in Counter(names).items() if count > 1]
    if not repeated:
        return
    listed = ", ".join(repr(name) for name in repeated)
    what = f"column {listed} appears" if len(repeated) == 1 else f"columns {listed} appear"
    raise SchemaError(f"{what} more than once in {source}; rename the repeated columns so that every column "
                      f"has a name of its own.")


def check_frame_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` after checking that its column labels are unique (see ``check_unique_columns``)."""
    if frame.columns.has_duplicates:
        check_unique_columns(frame.columns)
    return frame


def text_header(path: Path, *, sep: str, compression: Literal["gzip"] | None) -> list[str]:
    """The fields of a CSV/TSV file's first line as written (pandas' quoting rules, no renaming); [] if unparsable."""
    try:
        header = pd.read_csv(path, sep=sep, engine="c", compression=compression, header=None, nrows=1, dtype=str,
                             keep_default_na=False)
    except ValueError:  # empty, undecodable or malformed: the reader reports that in its own words
        return []
    return [str(name) for name in header.iloc[0].tolist()] if len(header) else []


def check_text_header(path: Path, columns: Iterable[Any], *, sep: str,
                      compression: Literal["gzip"] | None) -> None:
    """Raise a SchemaError when the header line of a CSV/TSV file that pandas read repeats a name.

    pandas reads a repeated name "price" as "price", "price.1", so the header is parsed again
    (one row, as text) only when a column read looks like such a rename; a column genuinely
    named "price.1" passes, since its header holds no repeat.
    """
    if any(MANGLED.search(str(name)) for name in columns):
        check_unique_columns(text_header(path, sep=sep, compression=compression), repr(str(path)))


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool; otherwise raise a ConfigError naming the option."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def check_two_classes(label: str, values: Any, *, allow: bool, stacklevel: int = 3) -> None:
    """Refuse (or, with ``allow``, warn about) a binary label whose training values are all 0 or all 1.

    Missing values are ignored, and a label holding values other than 0 and 1 passes: the
    encoder reports those with its own message.

    Args:
        label: The label column's name.
        values: Its training values, any array-like.
        allow: Warn instead of raising (``allow_single_class=True``).
        stacklevel: Passed to ``warnings.warn``; 3 points at the caller of the estimator's ``fit``.

    Raises:
        DataError: Only one class is present and ``allow`` is False.

    Example:
        >>> check_two_classes("click", [0, 1, 0], allow=False)
        >>> check_two_classes("click", [0, 0], allow=False)
        Traceback (most recent call last):
        ...
        recfunnel.errors.DataError: label 'click' has only one class (0) in the training data: AUC is \
undefined and the model can only learn a constant; check the label column or pass allow_single_class=True \
to train anyway.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    classes = pd.unique(pd.to_numeric(series.dropna(), errors="coerce"))  # a non-number becomes NaN: a class
    if len(classes) != 1 or classes[0] not in (0, 1):
        return
    problem = (f"label {label!r} has only one class ({int(classes[0])}) in the training data: AUC is undefined "
               f"and the model can only learn a constant")
    if not allow:
        raise DataError(f"{problem}; check the label column or pass allow_single_class=True to train anyway.")
    warnings.warn(f"{problem}; training anyway, as allow_single_class is set.", stacklevel=stacklevel)


__all__ = ["check_unique_columns", "check_frame_columns", "text_header", "check_text_header", "check_bool",
           "check_two_classes"]


def check_k(k: Any, *, limit: int | None = None) -> None:
    """Raise a ConfigError unless ``k`` is an integer in [1, limit] (no upper bound when None).

    Example:
        >>> check_k(10, limit=1000)
        >>> check_k(0)
        Traceback (most recent call last):
        ...
        recfunnel.errors.ConfigError: k must be a positive integer; got 0.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or (limit is not None and k > limit):
        bound = "a positive integer" if limit is None else f"an integer in [1, {limit}]"
        raise ConfigError(f"k must be {bound}; got {k!r}.")


def plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy scalars as Python ones, NaN as None.

    Example:
        >>> plain(np.int64(3)), plain(np.float32("nan")), plain("a")
        (3, None, 'a')
    """
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value
