"""LightGBM GBDT on rows written by a recfunnel benchmark (run with .venv-peers/bin/python).

Usage: ``.venv-peers/bin/python benchmarks/peers/lightgbm_gbdt.py ROWS.npz OUT.json``.

Single-valued encoded ids become LightGBM categorical features (``categorical_feature``); a
multi-valued feature (``kind == "varlen"``, e.g. MovieLens genres) becomes one 0/1 column per id
present in the training rows. For every grid point: ``lgb.train`` with early stopping (50 rounds)
on the validation AUC; the point with the best validation AUC is returned with its test predictions.
With ``config["early_stopping"]`` false, every point grows exactly ``max_rounds`` trees, as
``lgb.train`` does by default (100 rounds) when it is given no early-stopping callback.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _peer_common import best_of, load_rows, main_args, write_result  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402


def frame(arrays: dict, prefix: str, features: list[dict], bag_ids: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = {}
    for f in features:
        values = arrays[f"{prefix}x.{f['name']}"]
        if f["kind"] == "varlen":
            for i in bag_ids[f["name"]]:
                columns[f"{f['name']}={i}"] = (values == i).any(axis=1).astype(np.float32)
        else:
            columns[f["name"]] = values.astype(np.int32)
    return pd.DataFrame(columns)


def frames(arrays: dict, features: list[dict], prefixes: tuple[str, ...]) -> tuple[list[pd.DataFrame], list[str]]:
    """Each split's feature frame (multi-valued columns by the ids present in train), and the
    names of the categorical columns."""
    bag_ids = {f["name"]: np.setdiff1d(np.unique(arrays[f"train.x.{f['name']}"]), [0])
               for f in features if f["kind"] == "varlen"}
    return [frame(arrays, p, features, bag_ids) for p in prefixes], [f["name"] for f in features if f["kind"] == "sparse"]


def main() -> None:
    npz, out = main_args()
    config, arrays = load_rows(npz)
    (x, xv, xt), categorical = frames(arrays, config["features"], ("train.", "valid.", "test."))
    y, yv = arrays["train.y"], arrays["valid.y"]
    runs = []
    for grid_params in config["grid"]:
        params = {"objective": "binary", "metric": "auc", "verbosity": -1, "num_threads": config["threads"],
                  "seed": config.get("seed", 2026), **grid_params}
        started = time.perf_counter()
        train_set = lgb.Dataset(x, y, categorical_feature=categorical, free_raw_data=False)
        valid_set = lgb.Dataset(xv, yv, reference=train_set)
        stopping = config.get("early_stopping", True)
        booster = lgb.train(params, train_set, num_boost_round=config.get("max_rounds", 5000),
                            valid_sets=[valid_set],
                            callbacks=[lgb.early_stopping(50, verbose=False)] if stopping else [])
        seconds = time.perf_counter() - started
        rounds = int(booster.best_iteration) if stopping else booster.current_iteration()
        valid_auc = float(booster.best_score["valid_0"]["auc"]) if stopping else \
            float(roc_auc_score(yv, booster.predict(xv)))
        run = {"params": grid_params, "valid_auc": valid_auc,
               "best_iteration": rounds, "train_seconds": seconds,
               "test_pred": booster.predict(xt, num_iteration=rounds).tolist()}
        print(f"lightgbm {grid_params} valid_auc={run['valid_auc']:.5f} iters={run['best_iteration']} "
              f"{seconds:.1f}s", file=sys.stderr, flush=True)
        runs.append(run)
    write_result(out, {**best_of(runs), "lightgbm": lgb.__version__})


if __name__ == "__main__":
    main()
