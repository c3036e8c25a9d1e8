"""SVD and SVD++: the prediction is the paper's formula, the implicit term reads the rated items, errors are clear."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from recfunnel import Retriever
from recfunnel.data.interactions import History, Interactions, query_batch, to_codes
from recfunnel.errors import ConfigError, SchemaError
from recfunnel.models.rating.svd import SVD
from recfunnel.models.rating.svdpp import SVDpp


@pytest.fixture(scope="module")
def data():
    frame = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 2], "item_id": [0, 1, 2, 1, 3, 2],
                          "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 4.0]})
    return Interactions.from_frame(frame, weight_col="rating")


def _untrained(cls, data):
    """(model in eval mode, its training batch): initial weights, the data's mean and range kept."""
    torch.manual_seed(0)
    model = cls(data.schema(), factors=3)
    batch = model.training_batch(data, seed=0)
    return model.eval(), batch


def test_svd_predicts_mean_plus_biases_plus_the_dot(data):
    model, batch = _untrained(SVD, data)
    with torch.no_grad():
        model.user_factors.weight[2 + 0, -1] = 0.5   # user 0 (code 2): the bias is the last column
        model.item_factors.weight[2 + 1, -1] = -0.25  # item 1 (code 3)
        p, q = model.user_factors.weight[2, :-1], model.item_factors.weight[3, :-1]
        expected = float(model.mean) + 0.5 - 0.25 + float(p @ q)
        assert float(model(batch)[1]) == pytest.approx(expected, abs=1e-6)  # row 1: user 0, item 1
        assert float(model.mean) == pytest.approx(19.0 / 6)


def test_svdpp_adds_the_normalised_sum_of_the_rated_items_factors(data):
    model, batch = _untrained(SVDpp, data)
    with torch.no_grad():
        y = model.implicit.weight
        rated = [0, 1, 2]  # user 0 rated items 0, 1, 2 (codes 2, 3, 4)
        implicit = (y[[r + 2 for r in rated]].sum(0)) / np.sqrt(3)
        p, q = model.user_factors.weight[2, :-1], model.item_factors.weight[3, :-1]
        expected = float(model.mean) + float((p + implicit) @ q)  # biases start at zero
        assert float(model(batch)[1]) == pytest.approx(expected, abs=1e-5)
        # a query's seen rows give the same term: what a user rated, whatever the source
        history = History(sparse.csr_matrix(np.array([[1.0, 1.0, 1.0, 0.0]])), np.full((1, 50), -1))
        query = query_batch(np.array([0]), history)
        query.features["item"] = to_codes(np.array([1]))
        assert float(model.predict(query)[0]) == pytest.approx(np.clip(expected, 1, 5), abs=1e-5)


def test_a_users_rated_items_move_svdpp_but_not_svd():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 40, 600), "item_id": rng.integers(0, 30, 600),
                          "rating": rng.integers(1, 6, 600).astype(float)}).drop_duplicates(["user_id", "item_id"])
    for name, moves in (("svdpp", True), ("svd", False)):
        model = Retriever(name, label="rating", trainer={"max_epochs": 5, "progress": False}).fit(frame)
        one = model.recommend(["new"], k=30, recent=[[1, 2, 3]], exclude_seen=False)
        other = model.recommend(["new"], k=30, recent=[[4, 5]], exclude_seen=False)
        by_item = [dict(zip(lists.items[0], lists.scores[0], strict=True)) for lists in (one, other)]
        differ = not np.allclose([by_item[0][i] for i in range(30)], [by_item[1][i] for i in range(30)])
        assert differ == moves, name


def test_labels_and_monitors_are_checked():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "rating": [4.0, 2.0]})
    with pytest.raises(ConfigError, match="'svd' predicts ratings: name the rating column with --label"):
        Retriever("svd")
    with pytest.raises(ConfigError, match="a Retriever needs a retrieval, sequential or rating model"):
        Retriever("deepfm")
    with pytest.raises(ConfigError, match="--label names the rating of a rating model"):
        Retriever("als", label="rating")
    with pytest.raises(ConfigError, match="monitor 'recall@10' is not a rating metric"):
        Retriever("svd", label="rating", monitor="recall@10")
    with pytest.raises(ConfigError, match="ranks the catalogue rather than scoring rows"):
        Retriever("popularity").fit(frame).predict(frame)
    with pytest.raises(SchemaError, match="no rating column 'rating'"):
        Retriever("svd", label="rating", trainer={"max_epochs": 1}).fit(frame).evaluate(frame.drop(columns="rating"))
