"""The main job on built-in data: synthetic shop -> DeepFM against baselines -> saved artifact."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recfunnel.api import Ranker
from recfunnel.data.splits import temporal_split
from recfunnel.datasets import make_shop
from recfunnel.metrics import auc, gauc, logloss
from recfunnel.schema import Categorical, Label, MultiCategorical, Numeric, Schema

SHOP_SCHEMA = Schema(
    Categorical("user_id", role="user"),
    Categorical("item_id", role="item"),
    Categorical("category", role="item"),
    Categorical("brand", role="item"),
    Numeric("price", transform="log1p", role="item"),
    MultiCategorical("tags", max_len=4, role="item"),
    Numeric("age", role="user"),
    Categorical("gender", role="user"),
    Categorical("region", role="user"),
    Categorical("hour", role="context"),
    Numeric("position", transform="log1p", role="context"),
    Label("click"),
)


def popularity_scores(train: pd.DataFrame, test: pd.DataFrame, *, prior: float = 20.0) -> np.ndarray:
    """Each test row's item click-through rate on the training rows, shrunk toward the global rate."""
    rate = train["click"].mean()
    stats = train.groupby("item_id")["click"].agg(["sum", "count"])
    smoothed = (stats["sum"] + prior * rate) / (stats["count"] + prior)
    return test["item_id"].map(smoothed).fillna(rate).to_numpy(dtype=np.float64)


def _score_row(name: str, test: pd.DataFrame, scores: np.ndarray, seconds: float) -> dict[str, Any]:
    y = test["click"].to_numpy()
    return {"model": name, "auc": auc(y, scores), "gauc": gauc(y, scores, test["user_id"].to_numpy()),
            "logloss": logloss(y, scores), "seconds": round(seconds, 1)}


def run_demo(*, out: str | Path = "artifacts/demo", num_users: int = 2000, num_items: int = 500,
             num_impressions: int = 300_000, max_epochs: int = 5, seed: int = 2026,
             log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Generate the shop, split by time, train LR and DeepFM, compare with popularity, save DeepFM.

    Returns:
        A report: per-model test AUC/gAUC/logloss, the best achievable AUC, row counts and paths.
    """
    log(f"generating a synthetic shop: {num_users:,} users, {num_items:,} items, {num_impressions:,} impressions")
    shop = make_shop(num_users=num_users, num_items=num_items, num_impressions=num_impressions, seed=seed)
    frame = shop.impressions[[*SHOP_SCHEMA.names]]
    rest, test_idx = temporal_split(shop.impressions["timestamp"].to_numpy(), 0.8)
    train_idx, valid_idx = temporal_split(shop.impressions["timestamp"].to_numpy()[rest], 0.9)
    train, valid = frame.iloc[rest[train_idx]], frame.iloc[rest[valid_idx]]
    test = frame.iloc[test_idx]
    rows = [_score_row("popularity (item CTR)", test, popularity_scores(train, test), 0.0)]
    rankers = {}
    for name, params, lr in (("lr", {}, 0.01),
                             ("deepfm", {"embedding_dim": 16, "hidden_units": (256, 128), "dropout": 0.2}, 1e-3)):
        log(f"training {name} on {len(train):,} rows (validating on {len(valid):,})")
        trainer = {"max_epochs": max_epochs, "batch_size": 4096, "lr": lr, "sparse_lr": 0.01, "seed": seed}
        started = time.perf_counter()
        ranker = Ranker(name, schema=SHOP_SCHEMA, params=params, trainer=trainer).fit(train, valid)
        rows.append(_score_row(name, test, ranker.predict(test), time.perf_counter() - started))
        rankers[name] = ranker
    artifact = rankers["deepfm"].save(out)
    test_file = Path(artifact).parent / f"{Path(artifact).name}_test.csv"
    test.to_csv(test_file, index=False)
    truth = shop.impressions["p_click"].to_numpy()[test_idx]  # the generator's true click probability
    return {"models": rows, "best_auc": auc(test["click"].to_numpy(), truth),
            "rows": {"train": len(train), "valid": len(valid), "test": len(test)},
            "artifact": str(artifact), "test_file": str(test_file)}
