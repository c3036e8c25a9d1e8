"""Named per-row metrics the trainer can select by string, each with the direction that counts as better."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from recfunnel.errors import ConfigError, did_you_mean
from recfunnel.metrics.classification import auc, logloss
from recfunnel.metrics.ranking import grouped_ndcg
from recfunnel.metrics.regression import mae, rmse

__all__ = ["METRICS", "MetricSpec", "get_metric"]


class MetricSpec(NamedTuple):
    """A metric function ``fn(y_true, y_pred) -> float`` and ``mode``: "max" or "min" is better."""

    fn: Callable[..., float]
    mode: str


# gauc (needs groups) and the top-K metrics (need (U, K) lists) have other signatures, so
# they are called directly rather than through this (y_true, y_pred) registry; "ndcg@10" takes
# the groups as a third argument (a RankingTask passes each row's user) and treats rows without
# groups as one list.
METRICS: dict[str, MetricSpec] = {
    "auc": MetricSpec(auc, "max"),
    "logloss": MetricSpec(logloss, "min"),
    "rmse": MetricSpec(rmse, "min"),
    "mae": MetricSpec(mae, "min"),
    "ndcg@10": MetricSpec(grouped_ndcg, "max"),
}


def get_metric(name: str) -> MetricSpec:
    """Look up a metric by name.

    Args:
        name: A key of ``METRICS``, e.g. "auc".

    Returns:
        The (fn, mode) pair; unpacks like a plain tuple.

    Raises:
        ConfigError: If the name is unknown; the message suggests the closest name.

    Example:
        >>> fn, mode = get_metric("rmse")
        >>> fn([1.0, 2.0], [1.0, 4.0]), mode
        (1.4142135623730951, 'min')
    """
    if name not in METRICS:
        hint = did_you_mean(name, list(METRICS)) or "."
        raise ConfigError(f"unknown metric {name!r}{hint} Valid: {', '.join(sorted(METRICS))}.")
    return METRICS[name]
