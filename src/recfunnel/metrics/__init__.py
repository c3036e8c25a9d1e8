"""Metrics as pure functions on numpy arrays: AUC, GAUC, log loss, RMSE, MAE and top-K ranking metrics."""

from recfunnel.metrics.classification import auc, gauc, logloss
from recfunnel.metrics.ranking import (
    coverage,
    grouped_ndcg,
    hit_rate_at_k,
    hits_matrix,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_report,
    recall_at_k,
)
from recfunnel.metrics.registry import METRICS, MetricSpec, get_metric
from recfunnel.metrics.regression import mae, rmse

__all__ = [
    "METRICS",
    "MetricSpec",
    "auc",
    "coverage",
    "gauc",
    "grouped_ndcg",
    "get_metric",
    "hit_rate_at_k",
    "hits_matrix",
    "logloss",
    "mae",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_report",
    "recall_at_k",
    "rmse",
]
