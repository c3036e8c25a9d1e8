"""FM recall: the query-item dot product is the FM's score less its user-only terms, and item
features make a cold item recallable."""

import numpy as np
import pandas as pd
import pytest
import torch

from recfunnel import Retriever
from recfunnel.data.interactions import History
from recfunnel.testing import checkerboard

FAST = {"max_epochs": 30, "batch_size": 64, "progress": False, "lr": 0.01}
PARAMS = {"embedding_dim": 16, "num_negatives": 8}


@pytest.fixture(scope="module")
def fitted():
    """Checkerboard with an item table: 'kind' is the parity, 'size' a number; items 20, 21 never occur."""
    train, test = checkerboard(num_users=40, num_items=20, seed=0)
    items = pd.DataFrame({"item_id": np.arange(22), "kind": np.where(np.arange(22) % 2 == 0, "even", "odd"),
                          "size": np.arange(22) * 0.5})
    return Retriever("fm_recall", params=PARAMS, trainer=FAST, time_col="ts").fit(train, item_features=items), test


def _pairwise(fields):
    return sum(float(fields[a] @ fields[b]) for a in range(len(fields)) for b in range(a + 1, len(fields)))


def test_the_dot_product_is_the_fm_score_less_the_user_only_terms(fitted):
    model = fitted[0].model_
    history = torch.tensor([[-1, 3, 5]])
    with torch.no_grad():
        query = model._queries(torch.tensor([2]), history)[0]
        item = model._items(torch.tensor([7]))[0]
        user_fields = [model.users.weight[2], model.history.weight[[4, 6]].mean(0)]  # history rows are item + 1
        features = model.item_side.rows(torch.tensor([7]))
        item_fields = list(model.item_side.embedding(features)[0])  # the item id is one of the features
        linear = float(model.item_bias.weight[7]) + float(model.item_linear(model.item_side.encode(features)))
        full = linear + _pairwise(user_fields + item_fields)  # the FM over every field
        assert float(query @ item) == pytest.approx(full - _pairwise(user_fields), abs=1e-4)


def test_learns_the_board_and_recalls_a_cold_item_by_its_features(fitted):
    model, test = fitted
    assert model.evaluate(test, ks=(5,))["recall@5"] >= 0.8
    top = model.recommend([0, 1], k=2).items.tolist()  # user 0 takes even items, user 1 odd ones
    # each has one item of their kind left, and the cold item of that kind comes right with it
    assert sorted(top[0]) == [2, 20] and sorted(top[1]) == [3, 21]


def test_a_new_users_recent_items_make_the_query():
    train, _ = checkerboard(num_users=40, num_items=20, seed=0)
    model = Retriever("fm_recall", params=PARAMS, trainer=FAST, time_col="ts").fit(train)
    recent = [[0, 2, 4], [1, 3, 5]]
    top = model.recommend(["nobody", "nobody"], k=3, recent=recent, exclude_seen=False).items.tolist()
    assert all(i % 2 == 0 for i in top[0]) and all(i % 2 == 1 for i in top[1])
    vectors = model.model_._query_vectors(np.array([-1]), History(None, np.full((1, 50), -1)))
    assert torch.equal(vectors[0, :-1], torch.zeros(16)) and float(vectors[0, -1]) == 1.0  # nothing known
