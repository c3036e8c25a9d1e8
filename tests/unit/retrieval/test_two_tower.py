"""Two-tower: feature-based item tower (cold items), log-Q correction, unseen users."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recfunnel import Retriever
from recfunnel.data.batch import Batch
from recfunnel.data.interactions import History, Interactions, query_batch, to_index
from recfunnel.errors import DataError
from recfunnel.models.retrieval.two_tower import TwoTower
from recfunnel.testing import checkerboard

FAST = {"max_epochs": 30, "batch_size": 64, "progress": False, "lr": 0.01}
PARAMS = {"embedding_dim": 16, "hidden_units": (32,), "num_negatives": 8}


@pytest.fixture(scope="module")
def board():
    return checkerboard(num_users=40, num_items=20, seed=0)


@pytest.fixture(scope="module")
def with_cold_items(board):
    """Checkerboard fitted with an item table whose 'kind' is the parity; items 20, 21 never occur."""
    train, test = board
    items = pd.DataFrame({"item_id": np.arange(22), "kind": np.where(np.arange(22) % 2 == 0, "even", "odd")})
    model = Retriever("two_tower", params=PARAMS, trainer=FAST, time_col="ts").fit(train, item_features=items)
    return model, test


def test_end_to_end_with_item_features(with_cold_items):
    model, test = with_cold_items
    assert model.model_.num_items == 22
    # the cold item of the user's kind is as likely as the held-out one, so both lead the list
    assert model.evaluate(test, ks=(2,))["recall@2"] == 1.0


def test_cold_item_is_encoded_from_its_features_and_ranks_with_its_kind(with_cold_items):
    model, _ = with_cold_items
    similar = model.similar_items([20, 21], k=4).items
    assert all(int(i) % 2 == 0 for i in similar[0]) and all(int(i) % 2 == 1 for i in similar[1])
    top = model.recommend([0, 1], k=2).items.tolist()  # user 0 is even, user 1 odd
    assert 20 in top[0] and 21 in top[1]


def test_encode_items_from_feature_columns_matches_item_vectors(with_cold_items):
    model, _ = with_cold_items
    tower = model.model_
    with torch.no_grad():
        features = tower.item_side.rows(torch.tensor([20, 3]))
        np.testing.assert_allclose(tower.encode_items(Batch({**features, "item": torch.tensor([1, 1])})), tower.item_vectors()[[20, 3]], atol=1e-6)


def test_log_q_subtracts_each_candidates_log_expected_count():
    frame = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 2], "item_id": [0, 1, 2, 0, 1, 0]})
    data = Interactions.from_frame(frame)
    model = TwoTower(data.schema(), embedding_dim=8, num_negatives=4).eval()
    batch = model.training_batch(data, seed=0)
    torch.manual_seed(0)
    corrected = model(batch).logits
    model.use_log_q = False
    torch.manual_seed(0)
    plain = model(batch).logits
    torch.manual_seed(0)
    ids, log_q = model.sampler(to_index(batch.features["item"]))
    share = torch.tensor([3 / 6, 2 / 6, 1 / 6])
    expected = (6 * share[ids] + 4 / 3).log()  # B·q_i in-batch + M/N uniform
    torch.testing.assert_close(log_q, expected)
    finite = torch.isfinite(plain)
    assert torch.equal(finite, torch.isfinite(corrected))
    diff = (corrected - plain)[finite]
    torch.testing.assert_close(diff, (-log_q).expand_as(plain)[finite], atol=1e-5, rtol=0)
    assert math.isclose(float(model.temperature), 0.05)


def test_unseen_user_is_described_by_its_history():
    train, _ = checkerboard(num_users=8, num_items=6)
    data = Interactions.from_frame(train)
    model = TwoTower(data.schema(), embedding_dim=8).eval()
    model.training_batch(data, seed=0)
    recent = np.full((3, model.max_history), -1)
    recent[0, -2:], recent[1, -2:] = [0, 2], [1, 3]
    with torch.no_grad():
        vectors = model.encode_query(query_batch(np.array([-1, -1, -1]), History(None, recent)))  # type: ignore[arg-type]
    assert torch.isfinite(vectors).all() and not torch.allclose(vectors[0], vectors[1])
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))


def test_missing_feature_rows_raise_a_clear_error(with_cold_items):
    model, _ = with_cold_items
    train, _ = checkerboard(num_users=4, num_items=6)
    with pytest.raises(DataError, match="no item_features; pass item_features="):
        TwoTower(model.model_.schema).training_batch(Interactions.from_frame(train), seed=0)
