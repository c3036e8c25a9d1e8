"""Every registered retrieval model, checked from the registry: a new model gets these tests free.

Each model fits the checkerboard (even users take even items, odd users odd items; the latest item
held out) with small settings and must rank the held-out item first, recommend nothing it saw,
survive save/load with identical lists, and give the same lists under the same seed.
"""

import numpy as np
import pytest
import torch

import recfunnel
from recfunnel import Retriever
from recfunnel.data.interactions import item_batch, query_batch
from recfunnel.models import list_models
from recfunnel.testing import checkerboard

# a sequential model is a retrieval model that reads the order of the user's items: same contract
MODELS = list_models("retrieval") + list_models("sequential")
RETRIEVAL = [info.name for info in MODELS]
LEARNERS = [info.name for info in MODELS if info.cls.learns_preferences]
FAST = {"max_epochs": 30, "batch_size": 64, "progress": False}  # trainer options for gradient models


@pytest.fixture(scope="module")
def board():
    return checkerboard(num_users=40, num_items=20, seed=0)


def _fit(name, train, seed=2026):
    info = next(i for i in MODELS if i.name == name)
    params = dict(getattr(info.cls, "test_params", {}))
    trainer = {**FAST, **getattr(info.cls, "test_trainer", {})}  # e.g. more steps for one row per user
    return Retriever(name, params=params, trainer=trainer, time_col="ts", seed=seed).fit(train)


def test_registry_has_popularity():
    assert "popularity" in RETRIEVAL


@pytest.mark.parametrize("name", LEARNERS)
def test_learns_the_checkerboard(name, board):
    train, test = board
    metrics = _fit(name, train).evaluate(test, ks=(1, 5))
    assert metrics["recall@1"] == 1.0, metrics


@pytest.mark.parametrize("name", RETRIEVAL)
def test_lists_have_k_distinct_unseen_items_with_finite_sorted_scores(name, board):
    train, _ = board
    top = _fit(name, train).recommend([0, 1, 2], k=5)
    assert top.items.shape == (3, 5) and top.valid.all() and np.isfinite(top.scores).all()
    assert (np.diff(top.scores, axis=1) <= 1e-6).all()
    for user, items in zip([0, 1, 2], top.items, strict=True):
        seen = set(train.item_id[train.user_id == user])
        assert len(set(items)) == 5 and not seen & set(items)


@pytest.mark.parametrize("name", RETRIEVAL)
def test_survives_save_and_load(name, board, tmp_path):
    train, test = board
    model = _fit(name, train)
    loaded = recfunnel.load(model.save(tmp_path / name))
    before, after = model.recommend([0, 1, 5], k=4), loaded.recommend([0, 1, 5], k=4)
    assert before.items.tolist() == after.items.tolist()
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5, atol=1e-6)
    assert loaded.evaluate(test, ks=(1,)) == model.evaluate(test, ks=(1,))


@pytest.mark.parametrize("name", RETRIEVAL)
def test_same_seed_same_lists(name, board):
    train, _ = board
    first, second = _fit(name, train, seed=7).recommend([0, 3], k=6), _fit(name, train, seed=7).recommend([0, 3], k=6)
    assert first.items.tolist() == second.items.tolist()


@pytest.mark.parametrize("name", RETRIEVAL)
def test_similar_items_never_returns_the_item_itself(name, board):
    train, _ = board
    similar = _fit(name, train).similar_items([0, 1], k=3)
    assert similar.valid.all() and 0 not in similar.items[0] and 1 not in similar.items[1]


@pytest.mark.parametrize("name", RETRIEVAL)
def test_unknown_user_gets_a_full_list(name, board):
    train, _ = board
    top = _fit(name, train).recommend(["nobody"], k=5)
    assert top.valid.all()


@pytest.mark.parametrize("name", RETRIEVAL)
def test_answers_on_batches_of_codes_from_its_schema(name, board):
    """The one model contract: built from a schema with roles, answering on Batches of codes."""
    train, _ = board
    retriever = _fit(name, train)
    model = retriever.model_
    schema = model.schema
    assert (schema["user"].role, schema["item"].role, schema["history"].role) == ("user", "item", "history")
    assert schema["history"].shares == "item" and model.num_items == schema.vocab_size("item") - 2 == 20
    users = retriever.data_.user_ids.index([0, 1, 2])
    query = query_batch(users, retriever.user_history(users))
    assert int(query.features["history"].min()) >= 0  # codes: 0 pads, never -1
    with torch.no_grad():
        scores = model.score(query)
        assert scores.shape == (3, model.num_items) and torch.isfinite(scores).all()
        lean = query_batch(users, retriever.user_history(users), seen=model.reads_seen)  # what the Retriever sends
        torch.testing.assert_close(model.score(lean), scores)
        if model.has_vectors:
            queries, catalogue = model.encode_query(query), model.item_vectors()
            dot = queries @ catalogue.T
            torch.testing.assert_close(scores, dot if dot.ndim == 2 else dot.amax(1), rtol=1e-4, atol=1e-4)
            picked = model.encode_items(item_batch(np.array([3, 0, 7])))
            torch.testing.assert_close(picked, catalogue[[3, 0, 7]], rtol=1e-5, atol=1e-6)
