"""BPR: training raises the AUC of training triples, fold-in, divergence and argument checks."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from recfunnel.data.interactions import History, Interactions, query_batch
from recfunnel.errors import ConfigError, NotFittedError, TrainingDivergedError
from recfunnel.models.retrieval.bpr import BPR


def blocks(num_users=60, num_items=40, groups=3, keep=0.6, seed=0):
    """Users and items in ``groups`` blocks; a user takes a random ``keep`` share of its block's items."""
    rng = np.random.default_rng(seed)
    users, items = np.meshgrid(np.arange(num_users), np.arange(num_items), indexing="ij")
    mask = (users % groups == items % groups) & (rng.random(users.shape) < keep)
    return Interactions.from_frame(pd.DataFrame({"user_id": users[mask], "item_id": items[mask]}))


def training_auc(model, matrix):
    """Share of (user, positive, negative) triples of the training matrix ranked right."""
    scores = model.score(query_batch(np.arange(matrix.shape[0]), None)).numpy()
    positive = matrix.toarray() > 0
    right = [(scores[u, positive[u]][:, None] > scores[u, ~positive[u]][None, :]).mean()
             for u in range(len(scores))]
    return float(np.mean(right))


def test_training_raises_the_auc_of_training_triples():
    data = blocks()
    aucs = []
    for iterations in (1, 40):
        torch.manual_seed(0)
        model = BPR(data.schema(), factors=8, learning_rate=0.1, iterations=iterations, batch_size=64).fit(data)
        aucs.append(training_auc(model, data.matrix()))
    assert aucs[1] > aucs[0] + 0.1 and aucs[1] > 0.95, aucs


def test_scores_are_factor_products_plus_item_bias():
    data = blocks()
    torch.manual_seed(0)
    model = BPR(data.schema(), factors=4, iterations=2).fit(data)
    expected = model.user_factors[:3] @ model.item_factors.T + model.item_bias
    torch.testing.assert_close(model.score(query_batch(np.arange(3), None)), expected)


def test_fold_in_is_the_mean_of_the_history_items_factors():
    data = blocks()
    torch.manual_seed(0)
    model = BPR(data.schema(), factors=4, iterations=2).fit(data)
    rows = sparse.csr_matrix(np.array([[1, 0, 1] + [0] * 37, [0] * 40], dtype=np.float32))
    query = model.encode_query(query_batch(np.array([-1, -1]), History(rows, np.full((2, 1), -1))))
    torch.testing.assert_close(query[0, :4], model.item_factors[[0, 2]].mean(0))
    assert torch.equal(query[1, :4], torch.zeros(4)) and torch.equal(query[:, 4], torch.ones(2))


def test_divergence_and_bad_arguments_raise():
    data = blocks()
    with pytest.raises(TrainingDivergedError, match="lower learning_rate"):
        BPR(data.schema(), learning_rate=1e30, regularization=1.0, iterations=3).fit(data)
    with pytest.raises(ConfigError, match="bpr batch_size must be an int >= 1; got 0"):
        BPR(data.schema(), batch_size=0)
    with pytest.raises(ConfigError, match="bpr learning_rate must be > 0"):
        BPR(data.schema(), learning_rate=0.0)
    with pytest.raises(NotFittedError, match="BPR is not fitted yet"):
        BPR(data.schema()).item_vectors()


def test_triples_whose_negative_is_a_positive_change_nothing():
    # Every user has every item, so every sampled "negative" is a positive and each triple is dropped.
    users, items = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
    data = Interactions.from_frame(pd.DataFrame({"user_id": users.ravel(), "item_id": items.ravel()}))
    torch.manual_seed(0)
    model = BPR(data.schema(), factors=3, iterations=5, batch_size=8).fit(data)
    torch.manual_seed(0)
    initial = torch.randn(5, 3) * 0.1, torch.randn(4, 3) * 0.1
    torch.testing.assert_close(model.user_factors, initial[0])
    torch.testing.assert_close(model.item_factors, initial[1])
    assert torch.equal(model.item_bias, torch.zeros(4))


def test_rowwise_adagrad_moves_rarely_touched_rows_where_plain_sgd_barely_does():
    # Sparse blocks: each user has about 2 of its block's items, so few triples touch any row.
    data = blocks(num_users=200, num_items=120, keep=0.05, seed=1)
    aucs = {}
    for optimizer, rate in (("sgd", 0.02), ("adagrad", 0.2)):
        torch.manual_seed(0)
        model = BPR(data.schema(), factors=8, learning_rate=rate, iterations=20, optimizer=optimizer).fit(data)
        aucs[optimizer] = training_auc(model, data.matrix())
    assert aucs["adagrad"] > aucs["sgd"] + 0.1, aucs


def test_the_default_step_is_rowwise_adagrad_and_sgd_stays_available():
    data = blocks()
    assert BPR(data.schema()).optimizer == "adagrad" and BPR(data.schema()).learning_rate == 0.2
    torch.manual_seed(0)
    model = BPR(data.schema(), factors=8, learning_rate=0.1, iterations=40, batch_size=64, optimizer="sgd").fit(data)
    assert training_auc(model, data.matrix()) > 0.95
    with pytest.raises(ConfigError, match=r"bpr optimizer must be one of \['adagrad', 'sgd'\]; got 'adam'"):
        BPR(data.schema(), optimizer="adam")
