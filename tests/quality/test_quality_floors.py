"""Quality floors on real public data (slow; run with `pytest -m slow`).

The data is not shipped with recfunnel (its licences forbid redistribution): point
RECFUNNEL_DATA at a folder holding ``frappe-nfm/`` and ``ml-100k/``; the tests skip otherwise.
The protocols are those of ``benchmarks/quality.py``; the floors sit a little below the
figures recorded in BENCHMARKS.md, so a regression in the encoder, models or Trainer shows up.
"""

import os
from pathlib import Path

import pytest

from recfunnel import Ranker
from recfunnel.data import movielens_ctr, random_split, read_libfm, read_movielens
from recfunnel.metrics import auc

DATA = Path(os.environ.get("RECFUNNEL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
pytestmark = pytest.mark.slow


def _frappe():
    folder = DATA / "frappe-nfm"
    if not folder.is_dir():
        pytest.skip(f"Frappe data not found in {folder}; set RECFUNNEL_DATA")
    validation = read_libfm(next(folder.glob("frappe.validation.libfm*")))
    test = read_libfm(next(folder.glob("frappe.test.libfm*")))
    train_idx, valid_idx = random_split(len(validation), (0.8, 0.2), seed=2026)
    return validation.iloc[train_idx], validation.iloc[valid_idx], test


def _movielens():
    folder = DATA / "ml-100k"
    if not folder.is_dir():
        pytest.skip(f"MovieLens 100K not found in {folder}; set RECFUNNEL_DATA")
    frame = movielens_ctr(read_movielens(folder)).drop(columns=["timestamp"])
    parts = random_split(len(frame), (0.8, 0.1, 0.1), seed=2026)
    return tuple(frame.iloc[p] for p in parts)


TRAINER = {"max_epochs": 30, "batch_size": 1024, "lr": 1e-3, "sparse_optimizer": "adam", "sparse_lr": 0.01,
           "embedding_l2": 0.0, "patience": 2}


@pytest.mark.parametrize(("model", "params", "floor"), [
    ("lr", {}, 0.92),
    ("fm", {"embedding_dim": 16}, 0.925),
    ("deepfm", {"embedding_dim": 16, "dropout": 0.2}, 0.935),
])
def test_frappe_test_auc(model, params, floor):
    train, valid, test = _frappe()
    ranker = Ranker(model, label="label", params=params, trainer=TRAINER).fit(train, valid)
    assert auc(test["label"].to_numpy(), ranker.predict(test)) > floor


@pytest.mark.parametrize(("model", "floor"), [("lr", 0.76), ("deepfm", 0.77)])
def test_movielens_ctr_test_auc(model, floor):
    train, valid, test = _movielens()
    ranker = Ranker(model, label="click", trainer=TRAINER).fit(train, valid)
    assert auc(test["click"].to_numpy(), ranker.predict(test)) > floor


def test_demo_shop_deepfm_beats_baselines_and_nears_the_best_auc(tmp_path):
    from recfunnel.demo import run_demo

    report = run_demo(out=tmp_path / "demo")
    scores = {row["model"]: row["auc"] for row in report["models"]}
    assert scores["deepfm"] > scores["lr"] > scores["popularity (item CTR)"]
    assert scores["deepfm"] > report["best_auc"] - 0.1
