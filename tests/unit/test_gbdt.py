"""GBDT+LR: leaf features from LightGBM trees, a linear head, and a pickle-free artifact."""

import json

import numpy as np
import pandas as pd
import pytest

from recfunnel.demo import shop_data
from recfunnel.errors import ConfigError
from recfunnel.funnel.storage import load
from recfunnel.metrics import auc

lightgbm = pytest.importorskip("lightgbm")
from recfunnel.gbdt import GBDTRanker  # noqa: E402

NUM_TREES = 30


@pytest.fixture(scope="module")
def shop():
    return shop_data(num_users=300, num_items=100, num_impressions=30_000, seed=3)


@pytest.fixture(scope="module")
def fitted(shop):
    return GBDTRanker(schema=shop.schema, num_trees=NUM_TREES, trainer={"max_epochs": 3}).fit(
        shop.rank_train, shop.rank_valid)


def test_auc_beats_floor_and_matches_plain_lightgbm(shop, fitted):
    matrix = fitted.matrix(shop.rank_train)
    plain = lightgbm.LGBMClassifier(n_estimators=NUM_TREES, num_leaves=31, learning_rate=0.1,
                                    random_state=2026, verbose=-1)
    categorical = [fitted.columns_.index(name) for name in fitted.categorical_]
    plain.fit(matrix, shop.rank_train["click"].to_numpy(), categorical_feature=categorical)
    labels = shop.rank_test["click"].to_numpy()
    plain_auc = auc(labels, plain.predict_proba(fitted.matrix(shop.rank_test))[:, 1])
    probabilities = fitted.predict(shop.rank_test)
    assert probabilities.shape == (len(shop.rank_test),)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    score = fitted.evaluate(shop.rank_test)
    assert set(score) == {"auc", "logloss"}
    assert score["auc"] > 0.65
    assert abs(score["auc"] - plain_auc) < 0.03
    assert score["auc"] == pytest.approx(auc(labels, probabilities), abs=1e-6)


def test_trees_skip_multi_valued_features(fitted):
    assert "tags" not in fitted.columns_
    assert {"user_id", "item_id", "price"} <= set(fitted.columns_)


def test_head_sees_exactly_one_leaf_feature_per_tree(shop, fitted):
    inputs = fitted.head_.encoder_.schema_.inputs
    assert [f.name for f in inputs] == [f"tree_{t}" for t in range(NUM_TREES)]
    assert all(type(f).__name__ == "Categorical" for f in inputs)
    expected = fitted.booster_.predict(fitted.matrix(shop.rank_train), pred_leaf=True)  # (N, T)
    assert expected.shape == (len(shop.rank_train), NUM_TREES)
    assert np.array_equal(fitted.leaves(shop.rank_train), expected)
    # the head's encoded tree_t index decodes back to the row's leaf in tree t
    batch = fitted.head_.encoder_.transform(
        pd.DataFrame({f"tree_{t}": [f"l{v}" for v in expected[:, t]] for t in range(NUM_TREES)}), labels=False)
    for t in (0, NUM_TREES - 1):
        decoded = fitted.head_.encoder_.decode_ids(f"tree_{t}", batch.features[f"tree_{t}"].numpy())
        assert list(decoded) == [f"l{v}" for v in expected[:, t]]
    assert len(np.unique(expected[:, 0])) > 1


def test_save_load_round_trip_without_pickle(shop, fitted, tmp_path):
    path = fitted.save(tmp_path / "gbdt_lr")
    loaded = load(path)
    assert isinstance(loaded, GBDTRanker)
    np.testing.assert_array_equal(loaded.predict(shop.rank_test), fitted.predict(shop.rank_test))
    assert (path / "gbdt.txt").read_text().startswith("tree")
    assert json.loads((path / "config.json").read_text())["estimator"] == "gbdt_lr"
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    assert not [p for p in tmp_path.iterdir() if p.name != "gbdt_lr"]  # no staging left behind
    fitted.save(path)  # overwriting an existing artifact works
    np.testing.assert_array_equal(load(path).predict(shop.rank_test.head(50)),
                                  fitted.predict(shop.rank_test.head(50)))


def test_regression_label_raises(shop):
    frame = shop.rank_train.head(500).assign(click=np.linspace(0.0, 3.0, 500))
    with pytest.raises(ConfigError, match=r"GBDTRanker supports binary labels only; label 'click' is "
                                          r"'regression'\. Use Ranker\(\.\.\.\) for a regression label\."):
        GBDTRanker(label="click", num_trees=2).fit(frame[["user_id", "price", "click"]])


def test_unknown_head_raises():
    with pytest.raises(ConfigError, match=r"unknown GBDTRanker head 'xyz'\. Valid: lr, fm\."):
        GBDTRanker(head="xyz")


def test_fm_head(shop):
    ranker = GBDTRanker(schema=shop.schema, num_trees=5, head="fm", trainer={"max_epochs": 1})
    ranker.fit(shop.rank_train.head(3000))
    assert ranker.head_.model_name == "fm"
    assert ranker.predict(shop.rank_test.head(10)).shape == (10,)


def test_missing_lightgbm_names_the_extra(shop, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "lightgbm", None)
    with pytest.raises(ImportError, match=r"pip install 'recfunnel\[gbdt\]'"):
        GBDTRanker(schema=shop.schema, num_trees=2).fit(shop.rank_train.head(100))
