"""Item2Vec: pair generation against a Python loop, the SGNS loss, noise distribution and queries."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from recfunnel import Retriever
from recfunnel.data.interactions import (
    History,
    Interactions,
    item_batch,
    query_batch,
    retrieval_schema,
    to_index,
)
from recfunnel.errors import ConfigError, DataError
from recfunnel.models.retrieval.item2vec import Item2Vec
from recfunnel.tasks import RetrievalTask


def _interactions(seed=0):
    """Users with shuffled rows and out-of-order times; every user's items are disjoint from others'."""
    rng = np.random.default_rng(seed)
    lengths = [5, 1, 3, 7, 2]
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.arange(len(users))  # item i belongs to exactly one user
    times = rng.permutation(len(users)).astype(float)
    rows = rng.permutation(len(users))
    frame = pd.DataFrame({"user_id": users[rows], "item_id": items[rows], "ts": times[rows]})
    return frame, Interactions.from_frame(frame, time_col="ts")


def _brute_force_pairs(frame, window):
    pairs = []
    for _, group in frame.groupby("user_id"):  # the reference loop lives in the test
        sequence = group.sort_values("ts").item_id.tolist()
        for i, center in enumerate(sequence):
            for j in range(max(0, i - window), min(len(sequence), i + window + 1)):
                if j != i:
                    pairs.append((center, sequence[j]))
    return Counter(pairs)


@pytest.mark.parametrize("window", [1, 2, 3, 10])
def test_pairs_match_a_python_loop_and_never_cross_users(window):
    frame, data = _interactions()
    model = Item2Vec(data.schema(), window=window, embedding_dim=4)
    batch = model.training_batch(data, seed=0)
    raw = data.item_ids.ids
    got = Counter(zip(raw[to_index(batch.features["center"]).numpy()].tolist(),
                      raw[to_index(batch.features["context"]).numpy()].tolist(), strict=True))
    assert got == _brute_force_pairs(frame, window)
    owner = dict(zip(frame.item_id, frame.user_id, strict=True))
    assert all(owner[a] == owner[b] for a, b in got)


def test_no_pairs_raises():
    data = Interactions.from_frame(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}))
    with pytest.raises(DataError, match="at least two interactions"):
        Item2Vec(data.schema()).training_batch(data, seed=0)


def test_sgns_loss_is_the_binary_logistic_loss():
    _, data = _interactions()
    torch.manual_seed(0)
    model = Item2Vec(data.schema(), embedding_dim=4, num_negatives=3)
    torch.nn.init.normal_(model.context_embedding.weight)
    torch.nn.init.normal_(model.item_embedding.weight)
    batch = model.training_batch(data, seed=0)
    torch.manual_seed(1)
    loss = RetrievalTask().loss(model(batch), batch)
    torch.manual_seed(1)  # the same negatives again, through the softmax variant's logits
    model.loss = "softmax"
    logits, target = model(batch)
    assert (target == 0).all() and logits.shape == (len(batch), 4)
    expected = torch.cat([F.softplus(-logits[:, :1]), F.softplus(logits[:, 1:])], 1).mean()
    torch.testing.assert_close(loss, expected)


def test_negatives_follow_the_unigram_distribution_to_the_power_three_quarters():
    frame = pd.DataFrame({"user_id": [0, 0, 0, 0, 1, 1, 1, 1], "item_id": [0, 0, 0, 1, 0, 1, 2, 1], "ts": range(8)})
    data = Interactions.from_frame(frame, time_col="ts")
    model = Item2Vec(data.schema())
    model.training_batch(data, seed=0)
    expected = np.array([4.0, 3.0, 1.0]) ** 0.75
    np.testing.assert_allclose(np.diff(model.noise_cdf.numpy(), prepend=0.0), expected / expected.sum())


def test_subsampling_is_seeded_and_drops_frequent_items():
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(50), 4), "item_id": np.tile([0, 0, 0, 1], 50) + np.repeat(
        np.arange(50) % 2 * 2, 4), "ts": np.arange(200)})
    data = Interactions.from_frame(frame, time_col="ts")
    model = Item2Vec(data.schema(), subsample=1e-2, window=1)
    first, second = model.training_batch(data, seed=3), model.training_batch(data, seed=3)
    assert torch.equal(first.features["center"], second.features["center"])
    full = Item2Vec(data.schema(), window=1).training_batch(data, seed=3)
    assert len(first) < len(full)


def test_query_is_the_mean_input_vector_of_recent_items():
    model = Item2Vec(retrieval_schema(2, 4), embedding_dim=3, recency_decay=None)
    torch.nn.init.normal_(model.item_embedding.weight)
    history = History(matrix=None, recent=np.array([[-1, 0, 2], [-1, -1, -1]]))  # type: ignore[arg-type]
    queries = model.encode_query(query_batch(np.array([0, 1]), history))
    weights = model.item_embedding.weight.detach()
    torch.testing.assert_close(queries[0], (weights[0] + weights[2]) / 2)
    assert torch.equal(queries[1], torch.zeros(3))
    decayed = Item2Vec(retrieval_schema(2, 4), embedding_dim=3, recency_decay=0.5)
    decayed.load_state_dict(model.state_dict())
    torch.testing.assert_close(decayed.encode_query(query_batch(np.array([0]), history))[0],
                               (0.5 * weights[0] + weights[2]) / 1.5)


def test_co_occurring_items_are_closer_than_others():
    rng = np.random.default_rng(0)
    # two tastes: users 0-29 take items 0-9, users 30-59 take items 10-19, 6 items each in random order
    users = np.repeat(np.arange(60), 6)
    items = np.concatenate([rng.choice(10, 6, replace=False) + (10 if u >= 30 else 0) for u in range(60)])
    frame = pd.DataFrame({"user_id": users, "item_id": items, "ts": np.arange(len(users))})
    model = Retriever("item2vec", params={"embedding_dim": 16, "window": 3}, time_col="ts",
                      trainer={"max_epochs": 15, "batch_size": 128, "progress": False}).fit(frame).model_
    similar = model.similar(item_batch(np.arange(20))).numpy()  # cosine of the input vectors
    same = np.arange(20)[:, None] // 10 == np.arange(20)[None, :] // 10
    off_diagonal = ~np.eye(20, dtype=bool)
    assert similar[same & off_diagonal].mean() > similar[~same].mean() + 0.3
    assert (similar[same & off_diagonal].min(initial=1.0) > similar[~same].max(initial=-1.0))
    # and a user's query scores the items of their own taste above the others
    history = History(matrix=None, recent=np.array([[0, 1, 2], [10, 11, 12]]))  # type: ignore[arg-type]
    scores = model.score(query_batch(np.array([0, 30]), history)).numpy()
    assert scores[0, 3:10].min() > scores[0, 10:].max() and scores[1, 13:].min() > scores[1, :10].max()


@pytest.mark.parametrize("params, message", [
    ({"embedding_dim": 0}, "embedding_dim must be a positive integer; got 0"),
    ({"window": 1.5}, "window must be a positive integer; got 1.5"),
    ({"loss": "hinge"}, "loss 'hinge' is not valid"),
    ({"subsample": -1.0}, "subsample must be >= 0; got -1.0"),
    ({"recency_decay": 0.0}, r"recency_decay must be in \(0, 1\] or None; got 0.0"),
])
def test_bad_options_raise(params, message):
    with pytest.raises(ConfigError, match=message):
        Item2Vec(retrieval_schema(3, 3), **params)
