"""Input checks shared by the metric functions: shapes, lengths, label values, finiteness."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from recfunnel.errors import DataError


def as_1d(values: ArrayLike, name: str) -> np.ndarray:
    """Return ``values`` as a non-empty 1-D numeric array; a (n, 1) column is flattened.

    Raises:
        DataError: If the input is not 1-D (or a single column), is empty, or is not numeric.
    """
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of shape (n,); got shape {array.shape}.")
    if array.size == 0:
        raise DataError(f"{name} is empty; metrics need at least one row.")
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(f"{name} must be numeric; got dtype {array.dtype}.") from err
    return array


def check_same_length(first: np.ndarray, first_name: str, second: np.ndarray, second_name: str) -> None:
    """Raise DataError when two per-row arrays differ in length."""
    if len(first) != len(second):
        raise DataError(
            f"{first_name} has {len(first)} rows but {second_name} has {len(second)}; "
            "pass arrays of equal length (one entry per row)."
        )


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise DataError when ``array`` holds NaN or infinity, naming the first bad row."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array))[0])
        raise DataError(
            f"{name} holds a non-finite value ({array[row]!r} at row {row}); "
            "metrics need finite numbers, so check the model output for divergence."
        )


def check_binary(labels: np.ndarray, name: str) -> np.ndarray:
    """Return ``labels`` as int64 after checking every value is 0 or 1."""
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name} must hold only 0 and 1; got {labels[row]!r} at row {row}.")
    return labels.astype(np.int64, copy=False)
