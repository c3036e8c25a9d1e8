"""Negative down-sampling with calibration: the link's formula, calibrated predictions, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from recfunnel.datasets import make_shop
from recfunnel.errors import ConfigError
from recfunnel.estimators import Ranker, load
from recfunnel.metrics import logloss
from recfunnel.tasks import BinaryTask, task_for_label, task_from_dict

COLUMNS = ["user_id", "item_id", "category", "price", "age", "hour", "click"]


def test_link_is_the_down_sampling_correction():
    w = 0.1
    logits = torch.tensor([-3.0, 0.0, 2.5])
    p = torch.sigmoid(logits)
    expected = p / (p + (1 - p) / w)
    torch.testing.assert_close(BinaryTask("click", negative_rate=w).link(logits), expected)
    task = task_for_label("click", "binary", negative_rate=w)
    assert task_from_dict(task.to_dict()) == task


def test_bad_rates_are_refused():
    with pytest.raises(ConfigError, match=r"negative_rate must be in \(0, 1\]"):
        BinaryTask("click", negative_rate=0.0)
    with pytest.raises(ConfigError, match=r"negative_sampling must be in \(0, 1\] \(the share of negatives kept\); got 1.5"):
        Ranker("lr", label="click", negative_sampling=1.5)
    with pytest.raises(ConfigError, match="negative down-sampling needs a binary label"):
        task_for_label("rating", "regression", negative_rate=0.5)


@pytest.fixture(scope="module")
def shop_rows():
    frame = make_shop(num_users=300, num_items=100, num_impressions=40_000, seed=3).impressions[COLUMNS]
    return frame.iloc[:32_000], frame.iloc[32_000:]


def test_down_sampled_ranker_predicts_the_unsampled_rate(shop_rows, tmp_path):
    train, test = shop_rows
    ranker = Ranker("lr", label="click", negative_sampling=0.1, trainer={"max_epochs": 3, "lr": 0.05}).fit(train)
    calibrated = ranker.predict(test)
    raw = 1 / (1 + np.exp(-(np.log(calibrated / (1 - calibrated)) - math.log(0.1))))  # without the correction
    rate = test["click"].mean()
    assert abs(calibrated.mean() - rate) < 0.25 * rate  # close to the real click rate
    assert raw.mean() > 2 * rate  # the sampled model alone overestimates it
    y = test["click"].to_numpy()
    assert logloss(y, calibrated) < logloss(y, raw)
    path = ranker.save(tmp_path / "lr")
    assert json.loads((path / "config.json").read_text())["task"]["negative_rate"] == 0.1
    np.testing.assert_allclose(load(path).predict(test), calibrated, rtol=1e-6)


def test_cli_flag_trains_a_calibrated_ranker(shop_rows, tmp_path):
    from recfunnel.cli.main import main

    train, test = shop_rows
    train.iloc[:8000].to_csv(tmp_path / "train.csv", index=False)
    code = main(["train", "--model", "lr", "--train", str(tmp_path / "train.csv"), "--label", "click",
                 "--negative-sampling", "0.25", "--set", "trainer.max_epochs=1", "--out", str(tmp_path / "run")])
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["negative_sampling"] == 0.25 and config["task"]["negative_rate"] == 0.25
