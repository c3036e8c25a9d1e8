"""Wide & Deep, NFM and FNN: what is specific to each, and that each learns the shop's clicks."""

import pytest
import torch

from recfunnel import Ranker
from recfunnel.data.batch import Batch
from recfunnel.datasets import make_shop
from recfunnel.models import build_model
from recfunnel.nn.interaction import BiInteraction
from recfunnel.tasks import RegressionTask
from recfunnel.testing import overfit_one_batch, toy_batch, toy_schema

TRAINER = {"max_epochs": 2, "batch_size": 512, "lr": 0.01, "sparse_lr": 0.02}
COLUMNS = ["user_id", "item_id", "category", "price", "tags", "hour", "click"]


def test_bi_interaction_equals_brute_force_sum_over_field_pairs():
    torch.manual_seed(0)
    fields = torch.randn(5, 4, 3, dtype=torch.float64)  # (B, F, D)
    brute = torch.zeros(5, 3, dtype=torch.float64)
    for i in range(4):
        for j in range(i + 1, 4):
            brute += fields[:, i] * fields[:, j]
    torch.testing.assert_close(BiInteraction()(fields), brute)


def test_nfm_is_linear_plus_mlp_of_the_bi_interaction_vector():
    torch.manual_seed(0)
    model = build_model("nfm", toy_schema(), {"embedding_dim": 4, "hidden_units": (8,)}).eval()
    batch = toy_batch(batch_size=8)
    fields, linear = model.embedding.forward_with_linear(batch.features)
    pairs = sum(fields[:, i] * fields[:, j] for i in range(fields.shape[1]) for j in range(i + 1, fields.shape[1]))
    torch.testing.assert_close(model(batch), linear + model.mlp(pairs).squeeze(-1))


def test_wide_deep_output_is_wide_plus_deep():
    torch.manual_seed(0)
    model = build_model("widedeep", toy_schema(), {"embedding_dim": 4, "hidden_units": (8, 8)}).eval()
    batch = toy_batch(batch_size=8)
    fields, wide = model.embedding.forward_with_linear(batch.features)
    deep = model.mlp(fields.flatten(1)).squeeze(-1)
    torch.testing.assert_close(model(batch), wide + deep)
    # The wide part alone is bias + Σ first-order weights: zeroing the deep output leaves it.
    with torch.no_grad():
        model.mlp.net[-1].weight.zero_()
        model.mlp.net[-1].bias.zero_()
    torch.testing.assert_close(model(batch), wide)


def test_fnn_has_no_first_order_term():
    model = build_model("fnn", toy_schema(), {"embedding_dim": 4, "hidden_units": (8,)})
    assert not model.embedding.with_linear
    assert model.embedding.table.embedding_dim == 4


@pytest.fixture(scope="module")
def shop_frames():
    impressions = make_shop(num_users=200, num_items=50, num_impressions=5000).impressions[COLUMNS]
    return impressions.iloc[:4000], impressions.iloc[4000:]


@pytest.mark.parametrize("name", ["widedeep", "nfm", "fnn"])
def test_learns_shop_clicks(name, shop_frames):
    train, test = shop_frames
    # The default batch of 4096 gives 2 steps an epoch on 4000 rows, too few for a deep-only FNN.
    ranker = Ranker(name, label="click", params={"embedding_dim": 8, "hidden_units": (32, 32)},
                    trainer=TRAINER).fit(train)
    assert ranker.evaluate(test)["auc"] > 0.6


@pytest.mark.parametrize("name", ["widedeep", "nfm", "fnn"])
def test_fits_a_regression_label_with_raw_outputs(name):
    torch.manual_seed(0)
    model = build_model(name, toy_schema(), {"embedding_dim": 4, "hidden_units": (8,)})
    features = toy_batch(batch_size=32).features
    batch = Batch(features, {"rating": torch.linspace(-3.0, 5.0, 32)})
    task = RegressionTask("rating")
    first, last = overfit_one_batch(model, lambda: task.loss(model(batch), batch), steps=100)
    assert last < first / 4
    outputs = model(batch)
    assert outputs.max() > 1.0 and outputs.min() < 0.0  # unbounded: no link function in the model
