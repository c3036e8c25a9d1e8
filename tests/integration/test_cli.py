"""`recfunnel train / evaluate / predict / models / demo` end to end on a tiny synthetic shop."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

SMALL = ["--set", "embedding_dim=4", "--set", "hidden_units=[16]",
         "--set", "trainer.max_epochs=2", "--set", "trainer.batch_size=256"]
ARTIFACT_FILES = {"config.json", "schema.json", "encoder.json", "model.safetensors", "metrics.json", "MODEL_CARD.md"}
FEATURES = ["user_id", "item_id", "category", "price", "age", "hour", "tags"]


def _specs(artifact: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((artifact / "schema.json").read_text())["features"]}


def _check_binary_metrics(metrics: dict) -> None:
    assert set(metrics) == {"auc", "logloss"}
    assert 0.0 < metrics["auc"] < 1.0
    assert 0.0 < metrics["logloss"] < math.inf


# -- train ----------------------------------------------------------------------------------------
def test_train_with_flags_writes_artifact_and_prints_inferred_schema(cli, data_dir, tmp_path):
    out = tmp_path / "runs" / "deepfm"
    result = cli("train", "--model", "deepfm", "--train", data_dir / "train.csv", "--valid", data_dir / "valid.csv",
                 "--label", "click", *SMALL, "--out", out)
    assert result.code == 0, result.err
    assert ARTIFACT_FILES <= {p.name for p in out.iterdir()}
    # the inferred schema is printed (strings/ints -> Categorical, floats -> Numeric, a|b -> bags) ...
    assert "inferred schema" in result.err and "--schema" in result.err
    for text in ("user_id", "role=user", "item_id", "role=item", "Categorical", "MultiCategorical",
                 "Numeric", "transform=standardize", "Label", "kind=binary"):
        assert text in result.err
    assert f"saved artifact to {out}" in result.err
    # ... and saved in the artifact, with the vocabulary sizes the encoder learned
    specs = _specs(out)
    assert list(specs) == [*FEATURES, "click"]
    kinds = {name: spec["type"] for name, spec in specs.items()}
    assert kinds == {"user_id": "Categorical", "item_id": "Categorical", "category": "Categorical",
                     "price": "Numeric", "age": "Categorical", "hour": "Categorical",
                     "tags": "MultiCategorical", "click": "Label"}
    assert specs["click"]["kind"] == "binary" and specs["user_id"]["vocab_size"] > 2
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "deepfm"
    assert config["params"] == {"embedding_dim": 4, "hidden_units": [16]}
    assert config["trainer"] == {"max_epochs": 2, "batch_size": 256}
    metrics = json.loads((out / "metrics.json").read_text())
    _check_binary_metrics(metrics["valid"])
    assert metrics["rows"] == {"train": 2000, "valid": 500}
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# deepfm ranker") and "valid auc" in card


def test_train_json_output_and_default_out_dir(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("train", "--model", "fm", "--train", data_dir / "train.csv", "--valid", data_dir / "valid.csv",
                 "--label", "click", "--set", "embedding_dim=4", "--set", "trainer.max_epochs=1", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)  # stdout holds only the JSON
    assert Path(report["artifact"]) == Path("runs") / "fm"
    assert (tmp_path / "runs" / "fm" / "model.safetensors").is_file()
    _check_binary_metrics(report["metrics"])
    assert [row["epoch"] for row in report["history"]] == [1]
    assert "inferred schema" not in result.err  # --json keeps the terminal quiet


def test_train_from_yaml_config_with_set_override(cli, data_dir, tmp_path):
    config = {
        "model": {"name": "deepfm", "embedding_dim": 4, "hidden_units": [16], "dropout": 0.1},
        "data": {"train": str(data_dir / "train.csv"), "valid": str(data_dir / "valid.csv"), "label": "click"},
        "trainer": {"max_epochs": 1, "batch_size": 256, "patience": 5},
        "seed": 3,
        "out": str(tmp_path / "from_yaml"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli("train", path, "--set", "trainer.max_epochs=3", "--set", "embedding_dim=6", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert len(report["history"]) == 3  # the override wins over the YAML value
    saved = json.loads((tmp_path / "from_yaml" / "config.json").read_text())
    assert saved["params"] == {"embedding_dim": 6, "hidden_units": [16], "dropout": 0.1}
    assert saved["trainer"] == {"max_epochs": 3, "batch_size": 256, "patience": 5}
    assert saved["seed"] == 3
    # a flag on the command line beats the YAML too: --model lr now rejects the YAML's DeepFM options
    result = cli("train", path, "--model", "lr")
    result.fails("ConfigError: unknown option", "for model 'lr'", "Model 'lr' takes no options.")


def test_yaml_config_may_name_the_model_as_a_string(cli, data_dir, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": "lr", "data": {"train": str(data_dir / "train.csv"), "label": "click"},
                                    "trainer": {"max_epochs": 1}, "out": str(tmp_path / "lr")}))
    result = cli("train", path)
    assert result.code == 0, result.err
    assert (tmp_path / "lr" / "model.safetensors").is_file()


# -- evaluate / predict -----------------------------------------------------------------------------
def test_evaluate_json(cli, artifact, data_dir):
    result = cli("evaluate", artifact, "--data", data_dir / "test.csv", "--json")
    assert result.code == 0, result.err
    _check_binary_metrics(json.loads(result.out))


def test_evaluate_table(cli, artifact, data_dir):
    result = cli("evaluate", artifact, "--data", data_dir / "test.csv")
    assert result.code == 0, result.err
    assert "auc" in result.err and "logloss" in result.err and "deepfm" in result.err


def test_predict_writes_one_probability_per_row(cli, artifact, data_dir, frames, tmp_path):
    out = tmp_path / "scores.csv"
    result = cli("predict", artifact, "--data", data_dir / "test.csv", "--out", out)
    assert result.code == 0, result.err
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["score"]
    assert len(scores) == len(frames["test"]) == 500
    assert scores["score"].between(0.0, 1.0).all() and scores["score"].notna().all()
    assert f"wrote 500 scores to {out}" in result.err


def test_predict_needs_no_label_ignores_extra_columns_and_keeps_ids(cli, artifact, data_dir, frames, tmp_path):
    data = frames["test"].drop(columns=["click"]).assign(extra=1.5)  # label dropped, a new column added
    data.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "deep" / "dir" / "scores.csv"  # parent directories are created, as for train --out
    result = cli("predict", artifact, "--data", tmp_path / "new.csv", "--out", out, "--keep", "user_id,item_id")
    assert result.code == 0, result.err
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["user_id", "item_id", "score"]
    assert scores["user_id"].tolist() == data["user_id"].tolist()
    # same rows, same scores as with the full test file
    full = tmp_path / "full.csv"
    assert cli("predict", artifact, "--data", data_dir / "test.csv", "--out", full).code == 0
    np.testing.assert_allclose(scores["score"], pd.read_csv(full)["score"], rtol=1e-6)


# -- models ---------------------------------------------------------------------------------------
def test_models_json(cli):
    result = cli("models", "--json")
    assert result.code == 0
    entries = json.loads(result.out)
    assert all(set(e) == {"name", "kind", "summary", "hyperparameters"} for e in entries)
    kinds = {e["name"]: e["kind"] for e in entries}
    # regression: the JSON lacked the hyperparameters the table shows
    defaults = {e["name"]: e["hyperparameters"] for e in entries}
    assert defaults["deepfm"]["embedding_dim"] == 64 and defaults["lambdarank"]["num_trees"] == 300
    assert {"lr", "fm", "deepfm"} <= set(kinds)
    assert kinds["lr"] == kinds["fm"] == kinds["deepfm"] == "ranking"
    only = json.loads(cli("models", "--kind", "ranking", "--json").out)
    assert {e["kind"] for e in only} == {"ranking"}


def test_models_table(cli):
    result = cli("models")
    assert result.code == 0
    assert "deepfm" in result.out and "embedding_dim=16" in result.out


def test_console_script_models_json():
    """The installed `recfunnel` entry point (not just main()) runs and prints JSON."""
    script = Path(sys.executable).parent / ("recfunnel.exe" if os.name == "nt" else "recfunnel")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "recfunnel.cli.main"]
    done = subprocess.run([*command, "models", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    names = {e["name"]: e["kind"] for e in json.loads(done.stdout)}
    assert names["deepfm"] == names["fm"] == names["lr"] == "ranking"


# -- label kinds, file formats, schema override -----------------------------------------------------
def test_regression_label_reports_rmse_and_mae(cli, frames, tmp_path):
    def with_rating(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=["click"]).assign(rating=1.0 + 4.0 * frame["click"] + 0.01 * frame["price"])

    with_rating(frames["train"]).to_csv(tmp_path / "train.csv", index=False)
    with_rating(frames["test"]).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "reg"
    result = cli("train", "--model", "fm", "--train", tmp_path / "train.csv", "--valid", tmp_path / "test.csv",
                 "--label", "rating", "--set", "embedding_dim=4", "--set", "trainer.max_epochs=2",
                 "--set", "trainer.lr=0.05", "--out", out)
    assert result.code == 0, result.err
    assert "kind=regression" in result.err
    assert json.loads((out / "config.json").read_text())["task"]["kind"] == "regression"
    result = cli("evaluate", out, "--data", tmp_path / "test.csv", "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert set(metrics) == {"rmse", "mae"}
    assert 0.0 < metrics["mae"] <= metrics["rmse"] < math.inf
    scores = tmp_path / "scores.csv"
    assert cli("predict", out, "--data", tmp_path / "test.csv", "--out", scores).code == 0
    assert len(pd.read_csv(scores)) == len(frames["test"])


def _write(frame: pd.DataFrame, path: Path) -> None:
    name = path.name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in name or name.endswith(".txt") else ",")


@pytest.mark.parametrize(("name", "flags"), [
    ("data.tsv", []),
    ("data.tsv.gz", []),
    ("data.csv.gz", []),
    ("data.parquet", []),
    ("data.txt", ["--format", "tsv"]),
])
def test_table_formats(cli, frames, tmp_path, name, flags):
    train, test = tmp_path / f"train_{name}", tmp_path / f"test_{name}"
    _write(frames["train"], train)
    _write(frames["test"], test)
    if name.endswith(".gz"):
        assert train.read_bytes()[:2] == b"\x1f\x8b"
    out = tmp_path / "run"
    result = cli("train", "--model", "lr", "--train", train, "--label", "click", *flags,
                 "--set", "trainer.max_epochs=1", "--out", out)
    assert result.code == 0, result.err
    assert [s["type"] for s in _specs(out).values()] == [
        "Categorical", "Categorical", "Categorical", "Numeric", "Categorical", "Categorical",
        "MultiCategorical", "Label"]
    result = cli("evaluate", out, "--data", test, *flags, "--json")
    assert result.code == 0, result.err
    _check_binary_metrics(json.loads(result.out))
    assert cli("predict", out, "--data", test, *flags, "--out", tmp_path / "s.csv").code == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(frames["test"])


def test_libfm_input(cli, tmp_path):
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 400), rng.integers(20, 40, 400)
    labels = (users % 2 == items % 2).astype(int)
    lines = [f"{y} {u}:1 {i}:1" for y, u, i in zip(labels, users, items, strict=True)]
    (tmp_path / "train.libfm").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    result = cli("train", "--model", "fm", "--train", tmp_path / "train.libfm", "--label", "label",
                 "--set", "embedding_dim=4", "--set", "trainer.max_epochs=1", "--out", out)
    assert result.code == 0, result.err
    assert list(_specs(out)) == ["f0", "f1", "label"]
    result = cli("evaluate", out, "--data", tmp_path / "train.libfm", "--json")
    assert result.code == 0, result.err
    _check_binary_metrics(json.loads(result.out))


def test_schema_override(cli, data_dir, tmp_path):
    schema = {"features": [
        {"type": "Categorical", "name": "user_id", "role": "user"},
        {"type": "Categorical", "name": "item_id", "role": "item"},
        {"type": "Numeric", "name": "price", "transform": "bucketize", "boundaries": [10, 20, 50]},
        {"type": "Numeric", "name": "age"},  # an int column, which inference would call Categorical
        {"type": "MultiCategorical", "name": "tags", "max_len": 3, "pooling": "sum"},
        {"type": "Label", "name": "click"},
    ]}
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    out = tmp_path / "run"
    result = cli("train", "--model", "deepfm", "--train", data_dir / "train.csv", "--label", "click",
                 "--schema", path, *SMALL, "--out", out)
    assert result.code == 0, result.err
    assert "inferred schema" not in result.err
    specs = _specs(out)
    assert list(specs) == ["user_id", "item_id", "price", "age", "tags", "click"]  # category, hour dropped
    assert specs["price"]["transform"] == "bucketize" and specs["price"]["boundaries"] == [10.0, 20.0, 50.0]
    assert specs["age"]["type"] == "Numeric"
    assert specs["tags"]["type"] == "MultiCategorical" and specs["tags"]["max_len"] == 3
    assert specs["tags"]["pooling"] == "sum"
    result = cli("evaluate", out, "--data", data_dir / "test.csv", "--json")
    assert result.code == 0, result.err
    _check_binary_metrics(json.loads(result.out))
    # a saved schema.json is a valid --schema too
    again = tmp_path / "again"
    result = cli("train", "--model", "lr", "--train", data_dir / "train.csv", "--label", "click",
                 "--schema", out / "schema.json", "--set", "trainer.max_epochs=1", "--out", again)
    assert result.code == 0, result.err
    assert list(_specs(again)) == list(specs)


def test_nan_in_numeric_column_is_filled_with_a_warning(cli, frames, data_dir, tmp_path):
    train = frames["train"].copy()
    train.loc[[3, 7], "price"] = np.nan
    train.to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "run"
    result = cli("train", "--model", "lr", "--train", tmp_path / "train.csv", "--label", "click",
                 "--set", "trainer.max_epochs=1", "--out", out)
    assert result.code == 0, result.err
    assert "warning: column 'price' (Numeric) has 2 NaN value(s) (first at row 3)" in result.err
    assert "training mean" in result.err and "--on-nan error" in result.err
    assert "api.py" not in result.err  # one line for the user, not Python's file:line and source
    result = cli("evaluate", out, "--data", tmp_path / "train.csv", "--json")
    assert result.code == 0, result.err
    _check_binary_metrics(json.loads(result.out))  # stdout stays pure JSON; the warning goes to stderr
    assert "warning: column 'price'" in result.err


def test_train_learns_to_rank_lists_from_flags(cli, data_dir, tmp_path):
    out = tmp_path / "listwise"
    result = cli("train", "--model", "fm", "--train", data_dir / "train.csv", "--valid", data_dir / "valid.csv",
                 "--label", "click", "--objective", "listwise", "--group", "user_id",
                 "--set", "trainer.max_epochs=2", "--out", out, "--json")
    assert result.code == 0, result.err
    saved = json.loads((out / "config.json").read_text())
    assert (saved["objective"], saved["group"]) == ("listwise", "user_id")
    metrics = json.loads(cli("evaluate", out, "--data", data_dir / "test.csv", "--json").out)
    assert "ndcg@10" in metrics and 0.0 < metrics["ndcg@10"] <= 1.0  # per-list metric, not only AUC


def test_objective_without_group_is_refused(cli, data_dir):
    result = cli("train", "--model", "fm", "--train", data_dir / "train.csv", "--label", "click",
                 "--objective", "pairwise")
    assert result.code == 2 and "objective and group go together" in result.err
