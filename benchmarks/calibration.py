"""Negative down-sampling: test log loss on untouched data with and without the calibration.

    python benchmarks/calibration.py [--rate 0.1] [--models lr,deepfm]

Trains each model on all training impressions of the synthetic shop, and on every click plus a
share ``rate`` of the non-clicks; scores the untouched last 20% of impressions. The sampled
model's raw sigmoid overestimates the click rate; ``Ranker(negative_sampling=rate)`` applies
q = p / (p + (1 - p) / rate).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from recfunnel.demo import RANKERS, shop_data
from recfunnel.estimators.ranker import Ranker
from recfunnel.metrics import auc, logloss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--models", default="lr,deepfm")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data = shop_data(num_users=2000, num_items=500, num_impressions=300_000, seed=2026)
    y = data.rank_test["click"].to_numpy()
    print(f"\ntest rows {len(y):,}, click rate {y.mean():.4f}, negatives kept in the sampled runs: {args.rate}\n")
    print("| model | training rows | predictions | mean prediction | logloss | AUC | train s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in args.models.split(","):
        params, lr = RANKERS[name]
        trainer = {"max_epochs": args.epochs, "batch_size": 4096, "lr": lr, "sparse_lr": 0.01, "seed": 1}
        for rate in (None, args.rate):
            started = time.perf_counter()
            ranker = Ranker(name, schema=data.schema, params=params, trainer=trainer, negative_sampling=rate)
            ranker.fit(data.rank_train, data.rank_valid)
            seconds = time.perf_counter() - started
            q = ranker.predict(data.rank_test)
            rows = [("all", "as trained", q)]
            if rate is not None:
                raw = 1 / (1 + np.exp(-(np.log(q / (1 - q)) - math.log(rate))))
                rows = [(f"sampled {rate}", "raw sigmoid", raw), (f"sampled {rate}", "calibrated", q)]
            for rows_name, kind, p in rows:
                print(f"| {name} | {rows_name} | {kind} | {p.mean():.4f} | {logloss(y, p):.4f} | {auc(y, p):.4f} "
                      f"| {seconds:.0f} |")


if __name__ == "__main__":
    main()
