"""I-AutoRec and NeuMF: each prediction is its paper's formula, AutoRec's codes travel with the
model, and NeuMF without a rating column learns from the interactions and ranks the catalogue."""

import numpy as np
import pandas as pd
import pytest
import torch

from recfunnel import Retriever
from recfunnel.data.interactions import FIRST_CODE, Interactions, query_batch, to_codes
from recfunnel.errors import ConfigError
from recfunnel.models.rating.autorec import AutoRec
from recfunnel.models.rating.neumf import NeuMF
from recfunnel.tasks import GROUP


@pytest.fixture(scope="module")
def data():
    frame = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 2, 2], "item_id": [0, 1, 2, 1, 3, 2, 2],
                          "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 4.0, 2.0]})  # user 2 rated item 2 twice
    return Interactions.from_frame(frame, weight_col="rating")


def test_autorec_decodes_the_encoded_ratings_of_the_item(data):
    torch.manual_seed(0)
    model = AutoRec(data.schema(), hidden=4, init_std=0.3)
    batch = model.training_batch(data, seed=0)
    assert torch.equal(batch.labels[GROUP], torch.from_numpy(data.items))  # rows come grouped by item
    with torch.no_grad():
        model.encoder_bias.fill_(0.2)
        model.decoder_bias.weight[FIRST_CODE + 1] = 0.5
        v, w = model.encoder.weight, model.decoder.weight
        # item 2 was rated 4 by user 0 and 4, 2 (averaged: 3) by user 2
        code = torch.sigmoid(4.0 * v[FIRST_CODE + 0] + 3.0 * v[FIRST_CODE + 2] + 0.2)
        expected = float(model.mean) + 0.5 + float(w[FIRST_CODE + 1] @ code)
    model.eval()  # the item codes are computed from the training ratings here
    pair = query_batch(np.array([1]), None)
    pair.features["item"] = to_codes(np.array([2]))
    assert float(model(pair)[0].detach()) == pytest.approx(expected, abs=1e-5)
    assert torch.allclose(model.codes[FIRST_CODE + 2], code, atol=1e-6)


def test_autorec_keeps_the_codes_of_its_weights_when_saved():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 30, 400), "item_id": rng.integers(0, 20, 400),
                          "rating": rng.integers(1, 6, 400).astype(float)})
    fitted = Retriever("autorec", label="rating", params={"hidden": 8},
                       trainer={"max_epochs": 3, "progress": False}).fit(frame)
    model = fitted.model_
    state = model.state_dict()
    fresh = AutoRec(model.schema, hidden=8)
    fresh.load_state_dict(state)
    fresh.eval()
    assert fresh._raters is None  # a loaded model has no training ratings: its saved codes serve
    pairs = frame.head(10)
    expected = fitted.predict(pairs)
    fitted.model_ = fresh
    np.testing.assert_allclose(fitted.predict(pairs), expected, rtol=1e-6)


def test_neumf_scores_the_catalogue_as_it_scores_each_pair(data):
    torch.manual_seed(0)
    model = NeuMF(data.schema(), factors=3, mlp_factors=4, mlp_layers=(6, 5, 2)).eval()
    nn_init = torch.nn.init
    for layer in model.layers:
        nn_init.normal_(layer.weight)
    users, items = np.array([0, 2, 1]), np.arange(4)
    full = model.score(query_batch(users, None))
    for row, user in enumerate(users):
        pairs = query_batch(np.full(4, user), None)
        pairs.features["item"] = to_codes(items)
        torch.testing.assert_close(full[row], model(pairs), rtol=1e-5, atol=1e-5)


def test_neumf_drops_sampled_negatives_the_user_interacted_with():
    frame = pd.DataFrame({"user_id": [0, 0, 0, 1], "item_id": [0, 1, 2, 3]})
    data = Interactions.from_frame(frame)
    model = NeuMF(data.schema(), factors=2, mlp_factors=2, mlp_layers=(2,), num_negatives=50)
    model.explicit = False
    batch = model.training_batch(data, seed=0)
    torch.manual_seed(0)
    logits, target = model.train()(batch).logits
    assert logits.shape == (4, 51) and not target.any()
    masked = logits[:, 1:] <= -1e3
    # user 0 interacted with 3 of the 4 items, user 1 with 1: about 3/4 and 1/4 of the draws
    assert masked[:3].float().mean() > 0.5 and masked[3].float().mean() < 0.5
    assert not (logits[:, 0] <= -1e3).any()  # the positive itself is never masked


def test_neumf_without_a_rating_column_ranks_like_a_retrieval_model():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), 8)
    items = np.where(users < 20, rng.integers(0, 15, len(users)), rng.integers(15, 30, len(users)))
    frame = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates()
    test = frame.groupby("user_id").tail(1)
    model = Retriever("neumf", params={"factors": 8, "mlp_factors": 8, "mlp_layers": (16, 8)},
                      trainer={"max_epochs": 15, "batch_size": 64, "progress": False}).fit(frame.drop(test.index))
    assert model.rates is False and model.model_.explicit is False
    top = model.recommend([0, 39], k=5)
    assert (top.items[0] < 15).mean() >= 0.8 and (top.items[1] >= 15).mean() >= 0.8  # each user's own half
    metrics = model.evaluate(test)
    assert metrics["recall@10"] >= 0.9, metrics  # the ~8 unseen items of the own half fill the top 10 (random: ~0.45)
    with pytest.raises(ConfigError, match="ranks the catalogue rather than scoring rows"):
        model.predict(frame.head(3))


def test_neumf_options_are_checked(data):
    with pytest.raises(ConfigError, match="mlp_layers must name at least one layer"):
        NeuMF(data.schema(), mlp_layers=())
    with pytest.raises(ConfigError, match="num_negatives must be >= 1"):
        NeuMF(data.schema(), num_negatives=0)
