"""`recfunnel train / evaluate / recommend / similar` with retrieval models, on the checkerboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recfunnel.testing import checkerboard


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("board")
    train, test = checkerboard(num_users=20, num_items=10)
    valid = test.sample(frac=1.0, random_state=0).iloc[:5]
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    valid.to_csv(root / "valid.csv", index=False)
    return root


def test_train_evaluate_recommend_similar(cli, board, tmp_path):
    out = tmp_path / "runs" / "pop"
    result = cli("train", "--model", "popularity", "--train", board / "train.csv", "--user-col", "user_id",
                 "--item-col", "item_id", "--time-col", "ts", "--valid", board / "valid.csv", "--out", out)
    assert result.code == 0, result.err
    assert "saved artifact" in result.err and "recall@10" in result.err
    metrics = json.loads(cli("evaluate", out, "--data", board / "test.csv", "--json").out)
    assert {"recall@10", "ndcg@10", "hit@10", "mrr@10", "recall@20", "ndcg@50", "users"} <= set(metrics)
    assert metrics["users"] == 20 and type(metrics["users"]) is int  # regression: counts printed as 20.0000
    narrow = json.loads(cli("evaluate", out, "--data", board / "test.csv", "--k", "1,2", "--json").out)
    assert set(k for k in narrow if "@" in k) >= {"recall@1", "recall@2"}
    excluded = json.loads(cli("evaluate", out, "--data", board / "test.csv", "--exclude", board / "test.csv",
                              "--json").out)
    assert excluded["recall@10"] == 0.0  # the answers themselves were left out
    lists = json.loads(cli("recommend", out, "--user", "3", "--user", "stranger", "--k", "3", "--json").out)
    assert [entry["user_id"] for entry in lists] == [3, "stranger"]
    assert all(len(entry["items"]) == 3 for entry in lists)
    table = cli("recommend", out, "--user", "3", "--k", "2")
    assert table.code == 0 and "item_id" in table.out
    similar = json.loads(cli("similar", out, "--item", "4", "--k", "2", "--json").out)
    assert similar[0]["query_item"] == 4 and 4 not in [i["item_id"] for i in similar[0]["items"]]


def test_yaml_config_for_a_retrieval_model(cli, board, tmp_path):
    config = {"model": {"name": "popularity", "half_life": 3.0},
              "data": {"train": str(board / "train.csv"), "time_col": "ts"}, "out": str(tmp_path / "p")}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(config))
    result = cli("train", tmp_path / "r.yaml", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["artifact"] == str(tmp_path / "p")


def test_user_errors(cli, board, tmp_path, artifact):
    cli("train", "--model", "popularity", "--train", board / "train.csv", "--user-col", "usr").fails(
        "user-col 'usr' is not a column", "did you mean 'user_id'")
    cli("train", "--model", "popularity", "--train", board / "train.csv", "--label", "x").fails(
        "'label' does not apply to 'popularity', a retrieval model")
    cli("train", "--model", "popularity", "--train", board / "train.csv", "--set", "half_life=-1").fails(
        "half_life must be > 0")
    cli("train", "--model", "popularity", "--train", board / "train.csv", "--set", "half_life=5").fails(
        "needs a time column")
    cli("recommend", artifact, "--user", "1").fails("holds a ranking model")
    out = tmp_path / "pop"
    assert cli("train", "--model", "popularity", "--train", board / "train.csv", "--out", out).code == 0
    cli("recommend", out, "--user", "1", "--k", "0").fails("k must be an integer in [1, 100000]")
    cli("similar", out, "--item", "nope").fails("unknown item id")
    cli("evaluate", out, "--data", board / "test.csv", "--k", "ten").fails("--k expects positive integers")


def test_an_unknown_user_is_told_which_fallback_ran(cli, board, tmp_path):
    # regression: `recommend runs/als --user abc` returned the popularity list silently, its counts
    # looking like model scores
    out = tmp_path / "cf"
    assert cli("train", "--model", "itemcf", "--train", board / "train.csv", "--user-col", "user_id",
               "--item-col", "item_id", "--out", out).code == 0
    result = cli("recommend", out, "--user", "3", "--user", "abc", "--k", "2", "--json")
    lists = json.loads(result.out)
    assert [(e["user_id"], e["known"], e["fallback"]) for e in lists] == [(3, True, None), ("abc", False, "popularity")]
    assert "unknown to this itemcf model" in result.err and "'abc'" in result.err
    assert "unknown" not in cli("recommend", out, "--user", "3", "--k", "2").err


def test_train_prints_the_schemas_inferred_from_feature_tables(cli, board, tmp_path):
    # regression: the schema inferred from --item-features was never printed
    items = pd.DataFrame({"item_id": range(10), "colour": ["red", "blue"] * 5, "price": np.linspace(1, 9, 10)})
    users = pd.DataFrame({"user_id": range(20), "age": np.arange(20, 40, dtype=float)})
    items.to_csv(tmp_path / "items.csv", index=False)
    users.to_csv(tmp_path / "users.csv", index=False)
    args = ["train", "--model", "two_tower", "--train", board / "train.csv", "--item-features", tmp_path / "items.csv",
            "--set", "trainer.max_epochs=1", "--out", tmp_path / "tt"]
    result = cli(*args)
    assert result.code == 0, result.err
    assert "inferred item schema" in result.err and "user schema" not in result.err
    printed = result.err[result.err.index("inferred item schema"):]
    for column, kind in (("item_id", "Categorical"), ("colour", "Categorical"), ("price", "Numeric")):
        assert re.search(rf"{column}\s*│\s*{kind}", printed), printed
    both = cli(*args, "--user-features", tmp_path / "users.csv")
    assert both.code == 0, both.err
    assert both.err.index("inferred user schema") < both.err.index("inferred item schema")
    assert re.search(r"age\s*│\s*Numeric", both.err)
    assert "inferred" not in cli(*args, "--json").err  # --json prints only the JSON
