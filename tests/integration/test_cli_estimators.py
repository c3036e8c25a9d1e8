"""`recfunnel train/evaluate/predict/models` with estimators that train with their own fit (GBDT+LR, FTRL)."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
import yaml

from recfunnel.datasets import write_criteo_like

needs_lightgbm = pytest.mark.skipif(importlib.util.find_spec("lightgbm") is None, reason="the gbdt extra")

TREES = ["--set", "num_trees=10", "--set", "trainer.max_epochs=3", "--set", "trainer.batch_size=256"]


def test_estimators_are_listed_as_ranking_models(cli):
    listed = {entry["name"]: entry for entry in json.loads(cli("models", "--json").out)}
    assert listed["gbdt_lr"]["kind"] == listed["ftrl"]["kind"] == listed["lambdarank"]["kind"] == "ranking"
    assert listed["gbdt_lr"]["hyperparameters"]["num_trees"] is None and "label" not in listed["ftrl"]["hyperparameters"]
    table = cli("models", "--kind", "ranking")
    assert "num_trees=None" in table.out and "hash_bits=22" in table.out  # their own options
    assert "label=" not in table.out  # run arguments come from --label, not the model section


@needs_lightgbm
def test_gbdt_lr_train_evaluate_predict(cli, data_dir, frames, tmp_path):
    out = tmp_path / "gbdt"
    result = cli("train", "--model", "gbdt_lr", "--train", data_dir / "train.csv", "--valid", data_dir / "valid.csv",
                 "--label", "click", *TREES, "--out", out, "--json")
    assert result.code == 0, result.err
    trained = json.loads(result.out)
    assert trained["artifact"] == str(out) and (out / "gbdt.txt").is_file()
    assert set(trained["metrics"]) == {"auc", "logloss"} and len(trained["history"]) == 3
    assert json.loads((out / "gbdt.json").read_text())["params"]["num_trees"] == 10

    metrics = json.loads(cli("evaluate", out, "--data", data_dir / "test.csv", "--json").out)
    assert set(metrics) == {"auc", "logloss"} and 0.5 < metrics["auc"] < 1.0

    scores = tmp_path / "scores.csv"
    assert cli("predict", out, "--data", data_dir / "test.csv", "--out", scores).code == 0
    predicted = pd.read_csv(scores)["score"]
    assert len(predicted) == len(frames["test"]) and predicted.between(0, 1).all()


@needs_lightgbm
def test_gbdt_lr_from_yaml_config(cli, data_dir, tmp_path):
    config = {"model": {"name": "gbdt_lr", "num_trees": 5, "head": "fm", "head_params": {"embedding_dim": 4}},
              "data": {"train": str(data_dir / "train.csv"), "label": "click"},
              "trainer": {"max_epochs": 1}, "seed": 3, "out": str(tmp_path / "fm")}
    path = tmp_path / "gbdt.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli("train", path).code == 0
    saved = json.loads((tmp_path / "fm" / "gbdt.json").read_text())["params"]
    assert (saved["head"], saved["num_trees"], saved["seed"]) == ("fm", 5, 3)


@needs_lightgbm
def test_options_an_estimator_does_not_take_are_refused(cli, data_dir, tmp_path):
    common = ["train", "--model", "gbdt_lr", "--train", data_dir / "train.csv", "--label", "click"]
    cli(*common, "--set", "num_tres=3").fails("unknown option 'num_tres'", "did you mean 'num_trees'")
    cli(*common, "--negative-sampling", "0.5").fails(
        "data option 'negative_sampling' does not apply to 'gbdt_lr'", "valid: train, valid, test, format, label")


def test_python_ranker_points_to_the_estimator():
    from recfunnel.errors import ConfigError
    from recfunnel.estimators.ranker import Ranker
    from recfunnel.models import build_model
    from recfunnel.testing import toy_schema

    with pytest.raises(ConfigError, match="'gbdt_lr' is an estimator of its own, not a Ranker model; use recfunnel.estimators.gbdt_lr:GBDTRanker"):
        Ranker("gbdt_lr")
    with pytest.raises(ConfigError, match="'gbdt_lr' is an estimator with its own fit"):
        build_model("gbdt_lr", toy_schema())


def test_ftrl_streams_a_criteo_file_from_the_cli(cli, tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt.gz"
    write_criteo_like(train, 20_000, chunk_rows=5_000, seed=4)
    write_criteo_like(test, 4_000, chunk_rows=5_000, seed=4, start=20_000)
    out = tmp_path / "ftrl"
    result = cli("train", "--model", "ftrl", "--train", train, "--valid", test, "--label", "label",
                 "--set", "hash_bits=16", "--set", "chunk_rows=3000", "--out", out, "--json")
    assert result.code == 0, result.err
    trained = json.loads(result.out)
    assert trained["history"] == [] and trained["metrics"]["auc"] > 0.6  # the generator's signal is learnt
    assert json.loads((out / "config.json").read_text())["estimator"] == "ftrl"
    assert json.loads(cli("evaluate", out, "--data", test, "--json").out) == pytest.approx(trained["metrics"])
    scores = tmp_path / "scores.csv"
    assert cli("predict", out, "--data", test, "--format", "criteo", "--out", scores).code == 0
    assert len(pd.read_csv(scores)) == 4_000


def test_ftrl_refuses_trainer_options_and_formats_it_cannot_stream(cli, tmp_path):
    train = tmp_path / "train.txt"
    write_criteo_like(train, 100, chunk_rows=100, seed=4)
    common = ["train", "--model", "ftrl", "--train", train, "--label", "label"]
    cli(*common, "--set", "trainer.max_epochs=2").fails(
        "trainer options cannot be used with 'ftrl'", "hash_bits")
    cli(*common, "--format", "libfm").fails("unknown data format 'libfm'")
