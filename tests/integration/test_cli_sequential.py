"""`recfunnel train / evaluate / recommend` with sequential models, as the README spells them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfunnel.cli import main as cli_main
from recfunnel.data.frames import FORMATS

TRAINER = ["--set", "trainer.max_epochs=40", "--set", "trainer.batch_size=16", "--set", "trainer.lr=0.01"]
FAST = ["--set", "embedding_dim=16", "--set", "num_blocks=1", *TRAINER]


@pytest.fixture(scope="module")
def walks(tmp_path_factory) -> Path:
    """Every user walks the cycle 0 -> 1 -> ... -> 29 -> 0 from a random start: 6 train steps, then
    one valid and one test step."""
    root = tmp_path_factory.mktemp("walks")
    rng = np.random.default_rng(0)
    users, steps = 120, np.arange(8)
    starts = rng.integers(0, 30, users)
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(users), 8), "item_id": ((starts[:, None] + steps) % 30).ravel(),
                          "ts": np.tile(steps, users)})
    for name, part in (("train", frame[frame.ts < 6]), ("valid", frame[frame.ts == 6]), ("test", frame[frame.ts == 7])):
        part.to_csv(root / f"{name}.csv", index=False)
        lines = part.groupby("user_id").item_id.apply(lambda items: " ".join(map(str, items)))
        (root / f"{name}.txt").write_text("".join(f"{user} {items}\n" for user, items in lines.items()))
    return root


def test_sasrec_trains_evaluates_and_takes_recent_clicks(cli, walks, tmp_path):
    out = tmp_path / "runs" / "sasrec"
    trained = cli("train", "--model", "sasrec", "--train", walks / "train.csv", "--valid", walks / "valid.csv",
                  "--user-col", "user_id", "--item-col", "item_id", "--time-col", "ts", "--out", out, *FAST)
    assert trained.code == 0, trained.err
    evaluated = cli("evaluate", out, "--data", walks / "test.csv", "--exclude", walks / "valid.csv", "--json")
    metrics = json.loads(evaluated.out)
    assert evaluated.code == 0 and {"hit@10", "ndcg@10", "recall@10"} <= set(metrics) and metrics["users"] == 120
    assert metrics["hit@10"] > 0.8  # the valid item is the latest in the query: the next step is easy
    listed = cli("recommend", out, "--user", "42", "--recent", "7,19,3", "--k", "10", "--json")
    assert listed.code == 0 and len(json.loads(listed.out)[0]["items"]) == 10
    new = cli("recommend", out, "--user", "someone-new", "--recent", "11,12,13", "--k", "3", "--json")
    assert 14 in [item["item_id"] for item in json.loads(new.out)[0]["items"]]  # three clicks: the walk goes on
    cli("recommend", out, "--user", "1", "--recent", "7,,3").fails("--recent '7,,3' has an empty item id")


def test_the_one_line_per_user_format_trains_and_evaluates(cli, walks, tmp_path):
    out = tmp_path / "runs" / "gru4rec"
    trained = cli("train", "--model", "gru4rec", "--train", walks / "train.txt", "--valid", walks / "valid.txt",
                  "--format", "sequences", "--out", out, "--set", "embedding_dim=16", *TRAINER)
    assert trained.code == 0, trained.err
    evaluated = cli("evaluate", out, "--data", walks / "test.txt", "--format", "sequences", "--json")
    assert evaluated.code == 0 and json.loads(evaluated.out)["hit@10"] > 0.8


def test_models_lists_the_sequential_kind(cli):
    listed = cli("models", "--kind", "sequential", "--json")
    assert listed.code == 0 and {"sasrec", "gru4rec", "bert4rec"} <= {m["name"] for m in json.loads(listed.out)}


def test_the_format_choices_are_the_readers():
    assert cli_main.FORMATS == FORMATS
