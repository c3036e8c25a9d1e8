"""What fusing click and purchase does to a funnel's final lists on the synthetic shop, against
ranking by click alone, measured with the generator's true probabilities.

Run (from the repository root)::

    .venv/bin/python benchmarks/fuse_shop.py
    # options: --correlations 0.0,0.9  --users 800  --seed 2026

For each ``task_correlation`` ρ, a shop of 100,000 impressions (2,000 users, 500 items) is split
by time: ItemCF and popularity recall are fitted on the clicks of the first 80% (ItemCF 100 +
popularity 50 candidates), and one MMoE ranker with labels click and purchase on those
impressions (the last 10% of them its validation rows). The same funnel (recall, MMoE, drop seen)
then orders its candidates three ways: by ``fuse={"click": 1}``, by ``{"click": 1, "purchase": 1}``
(p_click · p_purchase) and by ``{"purchase": 1}``. For the first ``--users`` users with a click in
the last 20%, each final list of 10 is scored with the generator's true probabilities of a click
and of a purchase (at position 1, hour 20): the table gives their means over the lists' items.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

FEATURES = ["user_id", "item_id", "category", "brand", "price", "tags", "age", "gender", "region", "hour", "position"]
FUSES = {"click only": {"click": 1.0}, "click x purchase": {"click": 1.0, "purchase": 1.0},
         "purchase only": {"purchase": 1.0}}


def run(rho: float, seed: int, num_users: int) -> dict[str, tuple[float, float]]:
    """{ordering: (mean true p_click, mean true p_purchase) of the final lists' items}."""
    from recfunnel import Ranker, Retriever
    from recfunnel.datasets import make_shop
    from recfunnel.funnel import Funnel, Rank, Recall
    from recfunnel.funnel.rerank import DropSeen

    shop = make_shop(num_impressions=100_000, task_correlation=rho, seed=seed)
    impressions = shop.impressions
    cut = int(len(impressions) * 0.8)
    train, test = impressions.iloc[:cut], impressions.iloc[cut:]
    clicks = train[train["click"] == 1][["user_id", "item_id", "timestamp"]]
    recall = [Recall(Retriever("itemcf", time_col="timestamp").fit(clicks), k=100),
              Recall(Retriever("popularity", time_col="timestamp").fit(clicks), k=50)]
    fit_cut = int(cut * 0.9)
    mmoe = Ranker("mmoe", label=["click", "purchase"], seed=seed, trainer={"progress": False}).fit(
        train.iloc[:fit_cut][FEATURES + ["click", "purchase"]], train.iloc[fit_cut:][FEATURES + ["click", "purchase"]])
    users = test[test["click"] == 1]["user_id"].drop_duplicates().to_numpy()[:num_users]
    out = {}
    for name, fuse in FUSES.items():
        funnel = Funnel(recall, Rank(mmoe, users=shop.users, fuse=fuse), [DropSeen()], items=shop.items,
                        users=shop.users)
        lists = funnel.recommend_many(list(users), k=10, context={"hour": 20, "position": 1}, explain=False)
        pairs = [(user, item) for user, one in zip(users, lists, strict=True) for item in one.item_ids]
        u, i = np.asarray([p[0] for p in pairs], dtype=object), np.asarray([p[1] for p in pairs], dtype=object)
        out[name] = (float(np.nanmean(shop.click_probability(u, i))), float(np.nanmean(shop.purchase_probability(u, i))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correlations", default="0.0,0.9")
    parser.add_argument("--users", type=int, default=800)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for rho in (float(v) for v in args.correlations.split(",")):
        rows = run(rho, args.seed, args.users)
        print(f"\ntask_correlation {rho}: mean true probability of the final lists' items (k=10)\n")
        print("| ordering | true p_click | true p_purchase |\n|---|---:|---:|")
        for name, (click, purchase) in rows.items():
            print(f"| {name} | {click:.4f} | {purchase:.5f} |")
        print(flush=True)


if __name__ == "__main__":
    main()
