"""The main job: data -> rankers against baselines -> recall models -> a funnel, evaluated and saved."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recfunnel.data.splits import temporal_split
from recfunnel.datasets import make_shop
from recfunnel.estimators.ranker import Ranker
from recfunnel.estimators.retriever import Retriever
from recfunnel.funnel import MMR, DropSeen, Funnel, MaxPerGroup, NewItems, Rank, Recall
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
MOVIELENS_SCHEMA = Schema(
    Categorical("user_id", role="user"),
    Categorical("item_id", role="item"),
    MultiCategorical("genres", max_len=6, role="item"),
    Numeric("age", transform="bucketize", boundaries=(18, 25, 35, 45, 50, 56), role="user"),
    Categorical("gender", role="user"),
    Categorical("occupation", role="user"),
    Label("click"),
)


@dataclass
class DemoData:
    """Everything the demo trains and tests on, from the synthetic shop or MovieLens."""

    name: str
    schema: Schema
    rank_train: pd.DataFrame  # labelled rows for the rankers
    rank_valid: pd.DataFrame
    rank_test: pd.DataFrame
    clicks_train: pd.DataFrame  # positive interactions (user_id, item_id, timestamp) for recall
    clicks_test: pd.DataFrame
    items: pd.DataFrame  # item table: item_id, title, category, ...
    users: pd.DataFrame | None
    context: dict[str, Any]  # ranker context defaults when serving
    best_auc: float | None = None
    truth: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def shop_data(*, num_users: int, num_items: int, num_impressions: int, seed: int) -> DemoData:
    """The synthetic shop, split by time: the last 20% of impressions are the test days."""
    shop = make_shop(num_users=num_users, num_items=num_items, num_impressions=num_impressions, seed=seed)
    frame = shop.impressions
    train, valid, test = _time_split(frame)
    columns = [*SHOP_SCHEMA.names]
    truth_auc = auc(test["click"].to_numpy(), test["p_click"].to_numpy())
    return DemoData("synthetic shop", SHOP_SCHEMA, train[columns], valid[columns], test[columns],
                    _clicks(pd.concat([train, valid])), _clicks(test), shop.items, shop.users,
                    {"position": 1, "hour": 20}, truth_auc, shop.click_probability)


def movielens_data(path: str | Path) -> DemoData:
    """MovieLens 100K/1M files: a rating of 4+ is a click; the last 20% of ratings are the test."""
    from recfunnel.data.movielens import movielens_ctr, read_movielens

    ml = read_movielens(path)
    frame = movielens_ctr(ml).sort_values("timestamp", kind="stable").reset_index(drop=True)
    train, valid, test = _time_split(frame)
    items = ml.items.copy()
    items["category"] = items["genres"].str.split("|").str[0]
    columns = [*MOVIELENS_SCHEMA.names]
    return DemoData(f"MovieLens {ml.variant}", MOVIELENS_SCHEMA, train[columns], valid[columns], test[columns],
                    _clicks(pd.concat([train, valid])), _clicks(test), items, ml.users, {})


def _time_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rest, test = temporal_split(frame["timestamp"].to_numpy(), 0.8)
    train, valid = temporal_split(frame["timestamp"].to_numpy()[rest], 0.9)
    return frame.iloc[rest[train]], frame.iloc[rest[valid]], frame.iloc[test]


def _clicks(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[frame["click"] == 1, ["user_id", "item_id", "timestamp"]].reset_index(drop=True)


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


RANKERS = {"lr": ({}, 0.01), "deepfm": ({"embedding_dim": 16, "hidden_units": (256, 128), "dropout": 0.2}, 1e-3)}


def train_rankers(data: DemoData, *, max_epochs: int, seed: int, log: Callable[[str], None],
                  names: tuple[str, ...] = ("lr", "deepfm")) -> tuple[list[dict[str, Any]], Ranker]:
    """LR and DeepFM on the ranking rows, next to the item-CTR baseline; returns rows and the last."""
    rows = [_score_row("popularity (item CTR)", data.rank_test, popularity_scores(data.rank_train, data.rank_test), 0.0)]
    trained = {}
    for name in names:
        params, lr = RANKERS[name]
        log(f"rank: training {name} on {len(data.rank_train):,} rows (validating on {len(data.rank_valid):,})")
        # every option the ranking defaults set, so the demo's recorded figures stay comparable
        trainer = {"max_epochs": max_epochs, "batch_size": 4096, "lr": lr, "sparse_optimizer": "adam",
                   "sparse_lr": 0.01, "embedding_l2": 0.0, "patience": 2, "seed": seed}
        started = time.perf_counter()
        ranker = Ranker(name, schema=data.schema, params=params, trainer=trainer).fit(data.rank_train, data.rank_valid)
        rows.append(_score_row(name, data.rank_test, ranker.predict(data.rank_test), time.perf_counter() - started))
        trained[name] = ranker
    return rows, trained[names[-1]]


def build_funnel(data: DemoData, ranker: Ranker, *, max_epochs: int, seed: int,
                 log: Callable[[str], None]) -> Funnel:
    """Two-tower (over item attributes too), ItemCF and popularity recall on the training clicks,
    items added later, the ranker, and rerankers."""
    sources = []
    attributes = data.items.drop(columns=[c for c in ("title",) if c in data.items.columns])
    for name, k, trainer, features in (("two_tower", 200, {"max_epochs": max_epochs, "seed": seed}, attributes),
                                       ("itemcf", 100, None, None), ("popularity", 50, None, None)):
        log(f"recall: training {name} on {len(data.clicks_train):,} clicks")
        retriever = Retriever(name, time_col="timestamp", trainer=trainer, seed=seed)
        # the two-tower's item tower reads the attributes, so items added later get vectors too
        sources.append(Recall(retriever.fit(data.clicks_train, item_features=features), k=k))
    rank = Rank(ranker, users=data.users, context=data.context)
    return Funnel([*sources, NewItems(k=10)], rank=rank,
                  rerank=[DropSeen(), MMR(diversity=0.3), MaxPerGroup(n=3)], items=data.items, users=data.users)


def small_funnel(*, num_users: int = 200, num_items: int = 80, num_impressions: int = 20_000, max_epochs: int = 1,
                 seed: int = 7) -> tuple[Funnel, DemoData]:
    """A quickly trained funnel on a small synthetic shop (for tests, examples and benchmarks)."""
    data = shop_data(num_users=num_users, num_items=num_items, num_impressions=num_impressions, seed=seed)
    _, deepfm = train_rankers(data, max_epochs=max_epochs, seed=seed, log=lambda _: None, names=("deepfm",))
    return build_funnel(data, deepfm, max_epochs=max_epochs, seed=seed, log=lambda _: None), data


def run_demo(*, out: str | Path = "artifacts/demo", data: str | Path | None = None, num_users: int = 2000,
             num_items: int = 500, num_impressions: int = 300_000, max_epochs: int = 5, seed: int = 2026,
             log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Train rankers and recall models, assemble and evaluate the funnel, save it to ``out``.

    Args:
        out: The funnel artifact directory to write.
        data: A MovieLens directory (100K or 1M files); the synthetic shop when None.
        num_users, num_items, num_impressions: Sizes of the synthetic shop.
        max_epochs: Epoch budget of the gradient-trained models.
        seed: Seeds data generation and training.
        log: Receives progress lines.

    Returns:
        A report: the rankers' test AUC/gAUC/logloss, the funnel's stage table (see
        ``Funnel.evaluate``), row counts and the paths written.
    """
    if data is None:
        log(f"data: a synthetic shop of {num_users:,} users, {num_items:,} items, {num_impressions:,} impressions")
        parts = shop_data(num_users=num_users, num_items=num_items, num_impressions=num_impressions, seed=seed)
    else:
        log(f"data: MovieLens files in {data}")
        parts = movielens_data(data)
    rankers, deepfm = train_rankers(parts, max_epochs=max_epochs, seed=seed, log=log)
    funnel = build_funnel(parts, deepfm, max_epochs=max_epochs, seed=seed, log=log)
    log(f"funnel: evaluating on {len(parts.clicks_test):,} test clicks")
    stages = funnel.evaluate(parts.clicks_test, k=10, truth=parts.truth)
    artifact = funnel.save(out)
    target = Path(artifact)
    rank_test = target.parent / f"{target.name}_rank_test.csv"
    clicks_test = target.parent / f"{target.name}_test.csv"
    parts.rank_test.to_csv(rank_test, index=False)
    parts.clicks_test.to_csv(clicks_test, index=False)
    return {"data": parts.name, "models": rankers, "best_auc": parts.best_auc, "funnel": stages,
            "rows": {"train": len(parts.rank_train), "valid": len(parts.rank_valid), "test": len(parts.rank_test),
                     "test_clicks": len(parts.clicks_test)},
            "artifact": str(artifact), "rank_test_file": str(rank_test), "test_file": str(clicks_test)}
