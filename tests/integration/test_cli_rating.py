"""`recfunnel train / evaluate / predict / recommend` with rating models, as the README spells them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    root = tmp_path_factory.mktemp("rated")
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(60, 2)), rng.normal(size=(30, 2))
    truth = np.clip(np.rint(3 + 1.2 * users @ items.T), 1, 5)
    u, i = np.nonzero(rng.random(truth.shape) < 0.6)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": truth[u, i]}).sample(frac=1.0, random_state=0)
    a, b = int(len(frame) * 0.7), int(len(frame) * 0.8)
    parts = (frame.iloc[:a], frame.iloc[a:b], frame.iloc[b:])
    for name, part in zip(("train", "valid", "test"), parts, strict=True):
        part.to_csv(root / f"{name}.csv", index=False)
    return root


def test_svdpp_trains_evaluates_predicts_and_recommends(cli, rated, tmp_path):
    out = tmp_path / "runs" / "svdpp"
    trained = cli("train", "--model", "svdpp", "--train", rated / "train.csv", "--valid", rated / "valid.csv",
                  "--label", "rating", "--user-col", "user_id", "--item-col", "item_id", "--out", out)
    assert trained.code == 0, trained.err
    assert "rmse" in trained.err and "mae" in trained.err  # the validation table
    evaluated = cli("evaluate", out, "--data", rated / "test.csv", "--json")
    metrics = json.loads(evaluated.out)
    assert evaluated.code == 0 and set(metrics) == {"rmse", "mae", "rows"} and 0 < metrics["rmse"] < 1.2
    predicted = cli("predict", out, "--data", rated / "test.csv", "--out", tmp_path / "p.csv", "--keep", "user_id,item_id")
    scores = pd.read_csv(tmp_path / "p.csv")
    assert predicted.code == 0 and len(scores) == len(pd.read_csv(rated / "test.csv"))
    assert scores.score.between(1, 5).all()
    listed = cli("recommend", out, "--user", "3", "--k", "5", "--json")
    assert listed.code == 0 and len(json.loads(listed.out)[0]["items"]) == 5


def test_a_rating_model_needs_its_label_and_others_refuse_one(cli, rated):
    cli("train", "--model", "svd", "--train", rated / "train.csv").fails("needs data.label (or --label")
    cli("train", "--model", "als", "--train", rated / "train.csv", "--label", "rating").fails("label")


def test_neumf_learns_ratings_with_a_label_and_ranks_from_the_interactions_without(cli, rated, tmp_path):
    small = ["--set", "factors=4", "--set", "mlp_factors=4", "--set", "max_epochs=3"]
    common = ["--train", rated / "train.csv", "--valid", rated / "valid.csv", "--user-col", "user_id",
              "--item-col", "item_id", *small]
    assert cli("train", "--model", "neumf", *common, "--label", "rating", "--out", tmp_path / "rated").code == 0
    metrics = json.loads(cli("evaluate", tmp_path / "rated", "--data", rated / "test.csv", "--json").out)
    assert set(metrics) == {"rmse", "mae", "rows"}
    trained = cli("train", "--model", "neumf", *common, "--out", tmp_path / "ranked")
    assert trained.code == 0, trained.err
    evaluated = cli("evaluate", tmp_path / "ranked", "--data", rated / "test.csv", "--json")
    assert evaluated.code == 0 and {"recall@10", "ndcg@10", "hit@10"} <= set(json.loads(evaluated.out))
    cli("predict", tmp_path / "ranked", "--data", rated / "test.csv", "--out", tmp_path / "p.csv").fails(
        "ranks the catalogue rather than scoring rows")
