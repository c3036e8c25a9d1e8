"""Multi-task models on the synthetic shop at low and high task correlation, against the known ceiling.

Run (from the repository root)::

    .venv/bin/python benchmarks/multitask_shop.py
    # options: --correlations 0.0,0.9  --seeds 2  --impressions 100000  --models shared_bottom,mmoe,ple,esmm
    # a model with options: --models mmoe,mmoe:bottom=fm,mmoe:bottom=deepfm

For each ``task_correlation`` ρ (how alike the click and the conversion tastes are), a shop of
``--impressions`` impressions (2,000 users, 500 items) is split by time (the first 80% train, the
next 10% valid, the last 10% test). Labels: ``click`` and ``purchase`` (a purchase follows a
cart, a cart a click). Every model runs with its defaults on the impressions' features (user_id,
item_id, category, brand, price, tags, age, gender, region, hour, position); ESMM's purchase
column is its pCTCVR, the probability of a purchase over every impression, as the others
predict it. "ceiling" is the AUC of the generator's true ``p_click`` and ``p_purchase`` on the
same test rows. Test AUC, mean over seeds (the shop's seed and the models' seed move together).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

LABELS = ["click", "purchase"]
FEATURES = ["user_id", "item_id", "category", "brand", "price", "tags", "age", "gender", "region", "hour", "position"]


def run(rho: float, seed: int, impressions: int, models: list[str]) -> dict[str, tuple[float, float, float]]:
    """{system: (click AUC, purchase AUC, fit seconds)} for one shop."""
    from _common import spelled_model

    from recfunnel import Ranker
    from recfunnel.datasets import make_shop
    from recfunnel.metrics import auc

    frame = make_shop(num_impressions=impressions, task_correlation=rho, seed=seed).impressions
    a, b = int(len(frame) * 0.8), int(len(frame) * 0.9)
    train, valid, test = (part[FEATURES + LABELS + ["p_click", "p_purchase"]]
                          for part in (frame.iloc[:a], frame.iloc[a:b], frame.iloc[b:]))
    truth = test[LABELS].to_numpy()
    rows = {"ceiling (true probabilities)": (auc(truth[:, 0], test["p_click"].to_numpy()),
                                             auc(truth[:, 1], test["p_purchase"].to_numpy()), 0.0)}
    inputs = [train[FEATURES + LABELS], valid[FEATURES + LABELS]]
    for spelled in models:
        name, params = spelled_model(spelled)
        started = time.perf_counter()
        ranker = Ranker(name, label=LABELS, seed=seed, params=params,
                        trainer={"seed": seed, "progress": False}).fit(*inputs)
        predicted = ranker.predict(test[FEATURES])
        if name == "esmm":
            predicted[:, 1] = predicted[:, 0] * predicted[:, 1]
        rows[spelled] = (auc(truth[:, 0], predicted[:, 0]), auc(truth[:, 1], predicted[:, 1]),
                      time.perf_counter() - started)
    single, seconds = [], 0.0
    for label in LABELS:
        started = time.perf_counter()
        ranker = Ranker("deepfm", label=label, seed=seed, trainer={"seed": seed, "progress": False})
        single.append(ranker.fit(train[FEATURES + [label]], valid[FEATURES + [label]]).predict(test[FEATURES]))
        seconds += time.perf_counter() - started
    rows["DeepFM, one per label"] = (auc(truth[:, 0], single[0]), auc(truth[:, 1], single[1]), seconds)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correlations", default="0.0,0.9")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--impressions", type=int, default=100_000)
    parser.add_argument("--models", default="shared_bottom,mmoe,ple,esmm")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    for rho in (float(v) for v in args.correlations.split(",")):
        results: dict[str, list[tuple[float, float, float]]] = {}
        for seed in range(2026, 2026 + args.seeds):
            for name, row in run(rho, seed, args.impressions, models).items():
                results.setdefault(name, []).append(row)
                print(f"  rho {rho} seed {seed} {name}: click {row[0]:.4f}, purchase {row[1]:.4f}", flush=True)
        print(f"\ntask_correlation {rho}: test AUC, mean over {args.seeds} seed(s)\n")
        print("| system | click AUC | purchase AUC | fit s |\n|---|---:|---:|---:|")
        for name, rows in results.items():
            table = np.asarray(rows)
            print(f"| {name} | {table[:, 0].mean():.4f} | {table[:, 1].mean():.4f} | {table[:, 2].mean():.0f} |")
        print(flush=True)


if __name__ == "__main__":
    main()
