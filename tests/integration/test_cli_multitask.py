"""Several labels end to end from the CLI: each multi-task model trains on click and purchase,
evaluate reports each label, predict writes a column per label, and the artifact loads back."""

import json

import numpy as np
import pandas as pd
import pytest

import recfunnel
from recfunnel.datasets import make_shop

COLUMNS = ["user_id", "item_id", "category", "price", "age", "hour", "click", "purchase"]


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory):
    frame = make_shop(num_users=300, num_items=60, num_impressions=12000, seed=11).impressions[COLUMNS]
    root = tmp_path_factory.mktemp("multitask")
    for name, part in (("t", frame.iloc[:8000]), ("v", frame.iloc[8000:10000]), ("test", frame.iloc[10000:])):
        part.to_csv(root / f"{name}.csv", index=False)
    return root


@pytest.mark.parametrize("model", ["shared_bottom", "mmoe", "ple", "esmm"])
def test_a_multitask_model_trains_evaluates_and_predicts_every_label(cli, shop_files, tmp_path, model):
    out = tmp_path / "runs" / model
    trained = cli("train", "--model", model, "--train", shop_files / "t.csv", "--valid",
                  shop_files / "v.csv", "--label", "click,purchase", "--out", out, "--json")
    assert trained.code == 0, trained.err
    report = json.loads(trained.out)
    extra = {"ctcvr"} if model == "esmm" else set()  # ESMM also reports the product pCTR x pCVR
    assert set(report["metrics"]) == {"click", "purchase", *extra}
    assert {"valid_click_auc", "valid_purchase_auc", "valid_mean_auc"} <= set(report["history"][0])

    evaluated = cli("evaluate", out, "--data", shop_files / "test.csv", "--json")
    assert evaluated.code == 0, evaluated.err
    metrics = json.loads(evaluated.out)
    assert set(metrics) == {"click", "purchase", *extra} and all(set(v) == {"auc", "logloss"} for v in metrics.values())
    # the shop's labels are learnable; ESMM's purchase is the conversion given a click, scored on the
    # ~200 clicked test rows only, so its learnable figure is the product's over every row
    assert metrics["click"]["auc"] > 0.6 and metrics["ctcvr" if model == "esmm" else "purchase"]["auc"] > 0.6

    scores = tmp_path / "scores.csv"
    predicted = cli("predict", out, "--data", shop_files / "test.csv", "--out", scores, "--keep", "user_id")
    assert predicted.code == 0, predicted.err
    table = pd.read_csv(scores)
    assert list(table.columns) == ["user_id", "click", "purchase"]
    assert ((table[["click", "purchase"]] >= 0) & (table[["click", "purchase"]] <= 1)).all().all()

    loaded = recfunnel.load(out)
    assert loaded.labels_ == ("click", "purchase")
    np.testing.assert_allclose(loaded.predict(pd.read_csv(shop_files / "test.csv")), table[["click", "purchase"]],
                               rtol=1e-5, atol=1e-6)
    human = cli("evaluate", out, "--data", shop_files / "test.csv")
    assert human.code == 0 and "purchase auc" in human.err  # tables go to the console (stderr)


def test_several_labels_for_a_single_label_model_are_refused(cli, shop_files, tmp_path):
    cli("train", "--model", "deepfm", "--train", shop_files / "t.csv", "--label", "click,purchase",
        "--out", tmp_path / "x").fails("ConfigError: ", "model 'deepfm' trains one label; got ['click', 'purchase']")
    cli("train", "--model", "shared_bottom", "--train", shop_files / "t.csv", "--label", "click",
        "--out", tmp_path / "y").fails("ConfigError: ", "model 'shared_bottom' trains two or more labels")
    cli("train", "--model", "shared_bottom", "--train", shop_files / "t.csv", "--label", "click,bought",
        "--out", tmp_path / "z").fails("SchemaError: ", "label column 'bought' is missing")


def test_a_multitask_ranker_watches_the_mean_of_the_monitor_it_is_given(shop_files):
    from recfunnel import Ranker

    frame = pd.read_csv(shop_files / "t.csv")
    ranker = Ranker("shared_bottom", label="click,purchase", monitor="logloss",
                    trainer={"max_epochs": 1, "progress": False}).fit(frame.iloc[:3000], frame.iloc[3000:4000])
    assert ranker.task_.monitor == "mean_logloss" and ranker.task_.monitor_mode == "min"
    row = ranker.history_[0]
    assert row["valid_mean_logloss"] == pytest.approx((row["valid_click_logloss"] + row["valid_purchase_logloss"]) / 2)


def test_a_ranking_models_interaction_as_the_bottom_from_the_cli(cli, shop_files, tmp_path):
    out = tmp_path / "runs" / "mmoe-fm"
    trained = cli("train", "--model", "mmoe", "--train", shop_files / "t.csv", "--valid", shop_files / "v.csv",
                  "--label", "click,purchase", "--set", "bottom=fm", "--set", "trainer.max_epochs=2",
                  "--out", out, "--json")
    assert trained.code == 0, trained.err
    loaded = recfunnel.load(out)
    assert type(loaded.model_.bottom_model).__name__ == "FM"
    test = pd.read_csv(shop_files / "test.csv")
    assert json.loads(cli("evaluate", out, "--data", shop_files / "test.csv", "--json").out)["click"]["auc"] > 0.55
    assert loaded.predict(test).shape == (len(test), 2)
    cli("train", "--model", "mmoe", "--train", shop_files / "t.csv", "--label", "click,purchase",
        "--set", "bottom=lr", "--out", tmp_path / "x").fails("ConfigError: ", "bottom='lr' names no ranking model")


def test_labels_of_mixed_kinds_train_together(cli, shop_files, tmp_path):
    """A click (binary) and a dwell time (regression) in one model: each is trained and reported
    with its own loss and metrics."""
    rng = np.random.default_rng(0)
    for name in ("t", "v", "test"):
        frame = pd.read_csv(shop_files / f"{name}.csv")
        frame["dwell"] = frame["click"] * (20.0 + frame["price"] / 10 + rng.normal(0, 1, len(frame)))
        frame.drop(columns="purchase").to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / "mixed"
    trained = cli("train", "--model", "mmoe", "--train", tmp_path / "t.csv", "--valid", tmp_path / "v.csv",
                  "--label", "click,dwell", "--out", out, "--json")
    assert trained.code == 0, trained.err
    metrics = json.loads(cli("evaluate", out, "--data", tmp_path / "test.csv", "--json").out)
    assert set(metrics["click"]) == {"auc", "logloss"} and {"rmse", "mae"} <= set(metrics["dwell"])
    test = pd.read_csv(tmp_path / "test.csv")
    assert metrics["dwell"]["rmse"] < test["dwell"].std()  # better than predicting the mean
    scores = recfunnel.load(out).predict(test)
    assert scores[:, 1].max() > 1.0  # a dwell time, not a probability
