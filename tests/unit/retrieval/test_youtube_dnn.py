"""YouTube DNN: next-item examples without leakage, own-positive sampled softmax, the bias column."""

import numpy as np
import pandas as pd
import pytest
import torch

from recfunnel import Retriever
from recfunnel.data.interactions import Interactions, query_batch, to_index
from recfunnel.models.retrieval.youtube_dnn import YouTubeDNN
from recfunnel.nn.sampling import CandidateSampler, next_item_batch
from recfunnel.testing import checkerboard


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 8)
    items = np.concatenate([rng.permutation(25)[:8] for _ in range(30)])  # no repeated (user, item)
    frame = pd.DataFrame({"user_id": users, "item_id": items, "ts": rng.permutation(len(users))})
    return Interactions.from_frame(frame, time_col="ts")


def test_training_batch_never_leaks_the_target_into_its_history(data):
    batch = YouTubeDNN(data.schema(), embedding_dim=8).training_batch(data, seed=0)
    users, items, history = (to_index(batch.features[k]).numpy() for k in ("user", "item", "history"))
    assert len(users) == len(data) and history.shape == (len(data), 50)
    assert not (history == items[:, None]).any()
    times = {(u, i): t for u, i, t in zip(data.users, data.items, data.timestamps, strict=True)}
    for user, item, past in zip(users, items, history, strict=True):  # a check, not a hot path
        earlier = [i for i in past if i >= 0]
        assert all(times[(user, i)] < times[(user, item)] for i in earlier)
        assert len(earlier) == sum(t < times[(user, item)] for (u, _), t in times.items() if u == user)


def test_short_histories_are_left_padded_and_latest_last():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [5, 6, 7, 5], "ts": [3, 1, 2, 0]})
    batch = next_item_batch(Interactions.from_frame(frame, time_col="ts"), 2)
    assert to_index(batch.features["item"]).tolist() == [1, 2, 0, 0]  # user 1 by time: 6, 7, 5; then user 2
    assert batch.features["history"].tolist() == [[0, 0], [0, 3], [3, 4], [0, 0]]  # codes: 0 pads, item i is i + 2


def test_sampled_softmax_sees_only_the_rows_own_positive_and_corrects_by_frequency(data):
    model = YouTubeDNN(data.schema(), embedding_dim=8, num_negatives=5).eval()
    batch = model.training_batch(data, seed=0)[torch.arange(6)]
    torch.manual_seed(1)
    logits, target = model(batch)
    assert logits.shape == (6, 11) and target.tolist() == list(range(6))
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    assert torch.isneginf(logits[:, :6][off_diagonal]).all() and torch.isfinite(logits.diagonal()).all()
    counts = torch.bincount(torch.from_numpy(data.items), minlength=len(data.item_ids)).float()
    proposal = counts.pow(0.75) / counts.pow(0.75).sum()
    torch.testing.assert_close(model.sampler.proposal, proposal)
    torch.manual_seed(1)
    ids, log_q = model.sampler(to_index(batch.features["item"]))
    torch.testing.assert_close(log_q, (5 * proposal[ids]).log())


def test_frequency_sampler_draws_popular_items_more_often():
    sampler = CandidateSampler(3, num_negatives=20_000, in_batch=False, distribution="frequency")
    frame = pd.DataFrame({"user_id": range(17), "item_id": [0] * 16 + [1]})
    sampler.fit(Interactions.from_frame(frame))
    torch.manual_seed(0)
    drawn = torch.bincount(sampler(torch.tensor([0]))[0][1:], minlength=3) / 20_000
    assert abs(float(drawn[0]) - 8 / 9) < 0.02 and int(drawn[2]) == 0  # 16^.75 : 1^.75 = 8 : 1


def test_item_bias_is_the_last_column_of_the_scores(data):
    model = YouTubeDNN(data.schema(), embedding_dim=8).eval()
    model.training_batch(data, seed=0)
    with torch.no_grad():
        model.softmax.weight[:, -1] = torch.arange(len(data.item_ids), dtype=torch.float32)
        queries = model.encode_query(query_batch(np.array([0, 1]), None))
        scores = model.score(query_batch(np.array([0, 1]), None))  # type: ignore[arg-type]
    assert queries[:, -1].tolist() == [1.0, 1.0]
    torch.testing.assert_close(scores, queries[:, :-1] @ model.softmax.weight[:, :-1].T + torch.arange(25.0))


def test_end_to_end_with_user_features():
    train, test = checkerboard(num_users=40, num_items=20, seed=1)
    users = pd.DataFrame({"user_id": np.arange(40), "parity": np.where(np.arange(40) % 2 == 0, "even", "odd")})
    trainer = {"max_epochs": 30, "batch_size": 64, "progress": False}
    model = Retriever("youtube_dnn", params=YouTubeDNN.test_params, trainer=trainer, time_col="ts")
    model.fit(train, user_features=users)
    assert model.model_.user_side is not None
    assert model.evaluate(test, ks=(1,))["recall@1"] == 1.0
