"""DCN, DCN-V2 and PNN: cross layers and products against their formulas; training on the shop."""

import pytest
import torch

from recfunnel.datasets import make_shop
from recfunnel.errors import ConfigError
from recfunnel.estimators.ranker import Ranker
from recfunnel.models import build_model
from recfunnel.nn.cross import CrossNet, CrossNetV2
from recfunnel.nn.interaction import pairwise_inner_products, pooled_outer_product
from recfunnel.testing import toy_schema

# 4000 rows at the default batch_size=4096 would be 2 optimizer steps, so the AUC would be the
# seed's luck (fm and deepfm too); 256 gives 32 steps and AUC ~0.75 for every model and seed.
TRAINER = {"max_epochs": 2, "batch_size": 256}
SMALL = {"embedding_dim": 8, "hidden_units": (64, 64)}
COLUMNS = ["user_id", "item_id", "category", "brand", "price", "age", "hour", "position", "tags"]


def test_cross_net_layers_equal_their_formula():
    torch.manual_seed(0)
    net = CrossNet(4, num_layers=2)
    with torch.no_grad():
        for bias in net.biases:
            bias.normal_()
    x0 = torch.randn(3, 4)
    x = x0
    for w, b in zip(net.weights, net.biases, strict=True):
        x = torch.stack([x0[i] * torch.dot(x[i], w) + b + x[i] for i in range(3)])
    torch.testing.assert_close(net(x0), x)


def test_cross_net_v2_layers_equal_their_formula():
    torch.manual_seed(0)
    net = CrossNetV2(4, num_layers=2)
    x0 = torch.randn(3, 4)
    x = x0
    for layer in net.layers:
        w, b = layer.weight, layer.bias
        x = torch.stack([x0[i] * (w @ x[i] + b) + x[i] for i in range(3)])
    torch.testing.assert_close(net(x0), x)


def test_low_rank_cross_net_v2_equals_full_rank_with_w_equal_u_v_transposed():
    torch.manual_seed(0)
    low, full = CrossNetV2(5, num_layers=3, low_rank=2), CrossNetV2(5, num_layers=3)
    with torch.no_grad():
        for factored, dense in zip(low.layers, full.layers, strict=True):
            v_t, u = factored[0].weight, factored[1].weight                  # (r, d), (d, r)
            dense.weight.copy_(u @ v_t)
            dense.bias.copy_(factored[1].bias)
    x0 = torch.randn(4, 5)
    torch.testing.assert_close(low(x0), full(x0))


def test_inner_products_equal_a_loop_over_field_pairs():
    fields = torch.randn(3, 5, 4)
    brute = [(fields[:, i] * fields[:, j]).sum(-1) for i in range(5) for j in range(i + 1, 5)]
    torch.testing.assert_close(pairwise_inner_products(fields), torch.stack(brute, dim=1))


def test_pooled_outer_product_is_the_sum_of_all_field_outer_products():
    fields = torch.randn(2, 3, 4)
    brute = sum(torch.einsum("bi,bj->bij", fields[:, i], fields[:, j]) for i in range(3) for j in range(3))
    torch.testing.assert_close(pooled_outer_product(fields), brute.flatten(1))


def test_bad_choices_name_the_option():
    with pytest.raises(ConfigError, match=r"DCNv2 structure='stack' is not valid; expected one of \['parallel'"):
        build_model("dcnv2", toy_schema(), {"structure": "stack"})
    with pytest.raises(ConfigError, match=r"PNN product='dot' is not valid; expected one of \['inner', 'outer'\]"):
        build_model("pnn", toy_schema(), {"product": "dot"})


@pytest.fixture(scope="module")
def shop_frames():
    frame = make_shop(num_users=200, num_items=50, num_impressions=5000).impressions
    return frame.iloc[:4000].reset_index(drop=True), frame.iloc[4000:].reset_index(drop=True)


CASES = [("dcn", {}), ("dcnv2", {}), ("dcnv2", {"structure": "stacked", "low_rank": 8}),
         ("pnn", {}), ("pnn", {"product": "outer"})]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_trains_to_auc_above_chance_on_the_shop(shop_frames, name, params):
    train, test = shop_frames
    ranker = Ranker(name, label="click", params={**SMALL, **params}, trainer=TRAINER)
    ranker.fit(train[[*COLUMNS, "click"]])
    assert ranker.evaluate(test[[*COLUMNS, "click"]])["auc"] > 0.6


@pytest.mark.parametrize("name", ["dcn", "dcnv2", "pnn"])
def test_fits_a_regression_label(shop_frames, name):
    train, test = shop_frames
    ranker = Ranker(name, label="p_click", params=SMALL, trainer=TRAINER).fit(train[[*COLUMNS, "p_click"]])
    assert ranker.task_.kind == "regression"
    constant = float((test["p_click"] - train["p_click"].mean()).pow(2).mean() ** 0.5)  # RMSE of the mean
    assert ranker.evaluate(test[[*COLUMNS, "p_click"]])["rmse"] < 0.9 * constant
