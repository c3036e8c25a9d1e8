"""Rating-prediction metrics: root mean squared error and mean absolute error."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from recfunnel.metrics._validation import as_1d, check_finite, check_same_length

__all__ = ["mae", "rmse"]


def _errors(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    target = as_1d(y_true, "y_true").astype(np.float64, copy=False)
    prediction = as_1d(y_pred, "y_pred").astype(np.float64, copy=False)
    check_same_length(target, "y_true", prediction, "y_pred")
    check_finite(target, "y_true")
    check_finite(prediction, "y_pred")
    return prediction - target


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error.

    Args:
        y_true: Target values, shape (n,).
        y_pred: Predictions, shape (n,).

    Returns:
        sqrt(mean((y_pred - y_true) ** 2)).

    Raises:
        DataError: If shapes or lengths differ, an input is empty, or a value is not finite.

    Example:
        >>> rmse([3.0, 4.0, 5.0], [2.0, 4.0, 7.0])
        1.2909944487358056
    """
    errors = _errors(y_true, y_pred)
    return float(np.sqrt(np.mean(errors * errors)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error.

    Args:
        y_true: Target values, shape (n,).
        y_pred: Predictions, shape (n,).

    Returns:
        mean(|y_pred - y_true|).

    Raises:
        DataError: If shapes or lengths differ, an input is empty, or a value is not finite.

    Example:
        >>> mae([3.0, 4.0, 5.0], [2.0, 4.0, 7.0])
        1.0
    """
    return float(np.mean(np.abs(_errors(y_true, y_pred))))
