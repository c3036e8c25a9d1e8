"""Gradient-trained retrieval models validate on held-out interactions every epoch (full-ranking
recall@k) and stop early on it, keeping their best epoch."""

import pytest

from recfunnel import Retriever
from recfunnel.errors import ConfigError
from recfunnel.testing import checkerboard


def test_a_retriever_stops_on_its_valid_recall_and_keeps_the_best_epoch():
    train, test = checkerboard(num_users=40, num_items=20, seed=0)
    retriever = Retriever("youtube_dnn", params={"embedding_dim": 16, "hidden_units": (32,), "num_negatives": 8},
                          trainer={"max_epochs": 40, "batch_size": 64, "patience": 2, "progress": False},
                          time_col="ts", monitor="recall@5")
    retriever.fit(train, test)
    history = retriever.history_
    assert all("valid_recall@5" in row and "valid_ndcg@5" in row for row in history)
    assert len(history) < 40 and retriever.result_.stopped_early  # the checkerboard is learnt long before
    best = max(row["valid_recall@5"] for row in history)
    assert best == 1.0 and retriever.result_.best_score == best
    assert retriever.metrics_["valid"]["recall@5"] == best  # the kept weights are the best epoch's


def test_monitor_must_be_a_full_ranking_metric_at_a_cut_off():
    with pytest.raises(ConfigError, match="not a full-ranking metric"):
        Retriever("two_tower", monitor="auc")
    with pytest.raises(ConfigError, match="not a full-ranking metric"):
        Retriever("two_tower", monitor="recall@0")
