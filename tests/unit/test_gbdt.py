"""GBDT+LR: leaf features from LightGBM trees, a linear head, and a pickle-free artifact."""

import json

import numpy as np
import pandas as pd
import pytest

from recfunnel.demo import shop_data
from recfunnel.errors import ConfigError, DataError, SchemaError
from recfunnel.funnel import load
from recfunnel.metrics import auc

lightgbm = pytest.importorskip("lightgbm")
from recfunnel.estimators.gbdt_lr import MAX_LEAF_CELLS, GBDTRanker  # noqa: E402

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


def test_trees_see_a_small_bag_as_one_column_per_id(shop, fitted):
    assert "tags" not in fitted.columns_
    assert {"user_id", "item_id", "price"} <= set(fitted.columns_)
    tag_columns = [c for c in fitted.columns_ if c.startswith("tags__")]
    assert len(tag_columns) == fitted.encoder_.schema_.vocab_size("tags") - 2
    # each 0/1 column is 1 exactly on the rows whose tag list holds that tag
    rows = shop.rank_train.head(200)
    matrix = fitted.matrix(rows)
    for column in tag_columns[:3]:
        tag = fitted.encoder_.decode_ids("tags", [int(column.split("__")[1])])[0]
        expected = [tag in str(value).split("|") for value in rows["tags"]]
        assert matrix[:, fitted.columns_.index(column)].astype(bool).tolist() == expected


def test_head_sees_exactly_one_leaf_feature_per_tree(shop, fitted):
    trees = fitted.booster_.num_trees()
    inputs = fitted.head_.encoder_.schema_.inputs[:trees]
    assert [f.name for f in inputs] == [f"tree_{t}" for t in range(trees)]
    assert all(type(f).__name__ == "Categorical" for f in inputs)
    expected = fitted.booster_.predict(fitted.matrix(shop.rank_train), pred_leaf=True)  # (N, T)
    assert expected.shape == (len(shop.rank_train), trees)
    assert np.array_equal(fitted.leaves(shop.rank_train), expected)
    # the head's encoded tree_t index decodes back to the row's leaf in tree t
    batch = fitted.head_.encoder_.transform(fitted._leaf_features(shop.rank_train, labels=False), labels=False)
    for t in (0, trees - 1):
        decoded = fitted.head_.encoder_.decode_ids(f"tree_{t}", batch.features[f"tree_{t}"].numpy())
        assert list(decoded) == [f"l{v}" for v in expected[:, t]]
    assert len(np.unique(expected[:, 0])) > 1


def test_validation_stops_boosting_at_the_best_round(shop, fitted):
    """With validation rows the trees stop on validation AUC, as LightGBM's own early stopping does."""
    matrix, valid = fitted.matrix(shop.rank_train), fitted.matrix(shop.rank_valid)
    params = {"objective": "binary", "metric": "auc", "num_leaves": 31, "learning_rate": 0.1, "seed": 2026,
              "deterministic": True, "verbose": -1}
    train = lightgbm.Dataset(matrix, shop.rank_train["click"].to_numpy(), categorical_feature=fitted.categorical_,
                             feature_name=fitted.columns_)
    plain = lightgbm.train(params, train, num_boost_round=NUM_TREES, callbacks=[lightgbm.early_stopping(50, verbose=False)],
                           valid_sets=[lightgbm.Dataset(valid, shop.rank_valid["click"].to_numpy(), reference=train)])
    assert fitted.booster_.num_trees() == (plain.best_iteration or NUM_TREES) <= NUM_TREES
    np.testing.assert_allclose(fitted.booster_.predict(valid), plain.predict(valid, num_iteration=plain.best_iteration))


def test_head_starts_at_the_trees_prediction(shop, fitted):
    """set_leaf_weights gives the head each leaf's value, so its logit is the trees' raw score."""
    from recfunnel.estimators.gbdt_lr import leaf_frame, set_leaf_weights
    from recfunnel.models import build_model

    encoder = fitted.head_.encoder_
    model = build_model("lr", encoder.schema_, {}).eval()
    leaf_ids = fitted.leaves(shop.rank_train)
    set_leaf_weights(model, encoder, fitted.booster_, leaf_ids)
    # the raw features' weights start at zero, so they add nothing to the trees' score yet
    head_rows = fitted._leaf_features(shop.rank_train.head(500), labels=False)
    assert list(head_rows.columns) == [*leaf_frame(leaf_ids[:1]).columns, *fitted.raw_columns_]
    logits = model(encoder.transform(head_rows, labels=False)).detach().numpy()
    raw = fitted.booster_.predict(fitted.matrix(shop.rank_train.head(500)), raw_score=True)
    np.testing.assert_allclose(logits, raw, rtol=1e-5, atol=1e-5)


def test_head_keeps_the_trees_prediction_when_training_does_not_beat_it(shop):
    """A head trained into the ground (lr 50) falls back to its starting weights: the trees' prediction."""
    ranker = GBDTRanker(schema=shop.schema, num_trees=10, trainer={"max_epochs": 1, "lr": 50.0, "sparse_lr": 50.0})
    ranker.fit(shop.rank_train, shop.rank_valid)
    trees = ranker.booster_.predict(ranker.matrix(shop.rank_valid))
    valid_auc = auc(shop.rank_valid["click"].to_numpy(), trees)
    assert ranker.metrics_["valid"]["auc"] >= valid_auc - 1e-6
    np.testing.assert_allclose(ranker.predict(shop.rank_valid), trees, rtol=1e-4, atol=1e-6)


def test_head_reads_the_raw_features_beside_the_leaves(shop, fitted):
    """By default the head also has one weight per raw id, e.g. per user; raw_features=False leaves only trees."""
    names = [f.name for f in fitted.head_.encoder_.schema_.inputs]
    assert fitted.raw_columns_ == [f.name for f in shop.schema.inputs]
    assert names == [*(f"tree_{t}" for t in range(fitted.booster_.num_trees())), *fitted.raw_columns_]
    leaves_only = GBDTRanker(schema=shop.schema, num_trees=5, raw_features=False, trainer={"max_epochs": 1})
    leaves_only.fit(shop.rank_train, shop.rank_valid)
    assert [f.name for f in leaves_only.head_.encoder_.schema_.inputs] == [f"tree_{t}" for t in range(5)]
    with pytest.raises(SchemaError, match="user_id"):
        fitted.predict(shop.rank_test.drop(columns=["user_id"]))


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


def test_single_class_label_and_repeated_columns(shop, recwarn):  # regression: #15
    frame = shop.rank_train.head(500)[["user_id", "price", "click"]]
    with pytest.raises(DataError, match=r"label 'click' has only one class \(1\) in the training data"):
        GBDTRanker(label="click", num_trees=2).fit(frame.assign(click=1))
    ranker = GBDTRanker(label="click", num_trees=2, trainer={"max_epochs": 1}, allow_single_class=True)
    ranker.fit(frame.assign(click=1))
    single = [w for w in recwarn if "only one class" in str(w.message)]
    assert len(single) == 1 and single[0].filename == __file__  # the head's own warning is not repeated
    assert ranker.params()["allow_single_class"] is True
    with pytest.raises(SchemaError, match=r"column 'price' appears more than once in the DataFrame"):
        GBDTRanker(label="click", num_trees=2).fit(pd.concat([frame, frame[["price"]]], axis=1))
    with pytest.raises(SchemaError, match=r"column 'price' appears more than once in the DataFrame"):
        ranker.predict(pd.concat([frame, frame[["price"]]], axis=1))


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


def test_default_rounds_are_lightgbms_without_validation_and_early_stopped_with_it():
    assert GBDTRanker().rounds(has_valid=False) == 100  # lgb.train's own default
    assert GBDTRanker().rounds(has_valid=True) == 5000  # the most; early stopping on valid AUC decides
    # the head's leaf codes stay bounded on large data: rows x trees under MAX_LEAF_CELLS, never under 100
    assert GBDTRanker().rounds(has_valid=True, rows=1_000_000) * 1_000_000 <= MAX_LEAF_CELLS
    assert GBDTRanker().rounds(has_valid=True, rows=10**9) == 100
    assert GBDTRanker(num_trees=7).rounds(has_valid=True) == GBDTRanker(num_trees=7).rounds(has_valid=False) == 7
