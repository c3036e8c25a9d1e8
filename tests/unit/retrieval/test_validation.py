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


def test_query_and_item_batches_with_no_item_or_user_are_refused():
    import numpy as np
    import torch

    from recfunnel.data import Batch
    from recfunnel.data.interactions import item_batch, read_query
    from recfunnel.errors import DataError

    train, _ = checkerboard(num_users=10, num_items=6, seed=0)
    model = Retriever("itemcf").fit(train).model_
    with pytest.raises(DataError, match="padding or out-of-vocabulary codes at rows \\[1\\]"):
        model.similar(Batch({"item": torch.tensor([2, 0])}))
    assert model.similar(item_batch(np.array([0]))).shape == (1, 6)
    with pytest.raises(DataError, match="needs a 'user' column"):
        read_query(Batch({"history": torch.zeros(1, 3, dtype=torch.long)}), num_items=6, max_history=3)


def test_a_multitask_refuses_a_single_head_model():
    import torch

    from recfunnel.data import Batch
    from recfunnel.tasks import BinaryTask, MultiTask

    task = MultiTask([BinaryTask("click"), BinaryTask("buy")])
    with pytest.raises(ConfigError, match="needs a model returning \\{label: logits\\}"):
        task.loss(torch.zeros(3), Batch({}, {"click": torch.zeros(3), "buy": torch.zeros(3)}))
    with pytest.raises(ConfigError, match="got \\['click'\\]"):
        task.loss({"click": torch.zeros(3)}, Batch({}, {"click": torch.zeros(3), "buy": torch.zeros(3)}))
